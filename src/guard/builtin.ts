// Values an automated Block must never hit, shipped with ThreatBridge. Each entry says why: a
// Block here takes name resolution, patching, certificate checks or everyday work offline for
// every device the indicator reaches. Users extend it (guard.domains, guard.cidrs, …); they cannot
// remove from it except by turning it off (guard.builtin: false).

export interface BuiltinEntry {
  /** A domain (matches its subdomains), an IP, a CIDR range or a URL. */
  value: string;
  why: string;
}

export const BUILTIN_PROTECTED: readonly BuiltinEntry[] = [
  // Names that only exist inside a network: a Block on them hits internal services, never an attacker's.
  { value: 'localhost', why: 'loopback name' },
  { value: 'local', why: 'mDNS / Bonjour names (RFC 6762)' },
  { value: 'home.arpa', why: 'home network names (RFC 8375)' },
  { value: 'internal', why: 'reserved for private use (ICANN 2024)' },

  // Public DNS resolvers: clients and forwarders point at them; a Block breaks name resolution.
  { value: '8.8.8.8', why: 'Google Public DNS resolver' },
  { value: '8.8.4.4', why: 'Google Public DNS resolver' },
  { value: '2001:4860:4860::8888', why: 'Google Public DNS resolver (IPv6)' },
  { value: '2001:4860:4860::8844', why: 'Google Public DNS resolver (IPv6)' },
  { value: '1.1.1.1', why: 'Cloudflare DNS resolver' },
  { value: '1.0.0.1', why: 'Cloudflare DNS resolver' },
  { value: '2606:4700:4700::1111', why: 'Cloudflare DNS resolver (IPv6)' },
  { value: '2606:4700:4700::1001', why: 'Cloudflare DNS resolver (IPv6)' },
  { value: '9.9.9.9', why: 'Quad9 DNS resolver' },
  { value: '149.112.112.112', why: 'Quad9 DNS resolver' },
  { value: '2620:fe::fe', why: 'Quad9 DNS resolver (IPv6)' },
  { value: '208.67.222.222', why: 'OpenDNS resolver' },
  { value: '208.67.220.220', why: 'OpenDNS resolver' },
  { value: 'dns.google', why: 'Google DNS-over-HTTPS endpoint' },
  { value: 'cloudflare-dns.com', why: 'Cloudflare DNS-over-HTTPS endpoint' },
  { value: 'one.one.one.one', why: 'Cloudflare resolver host name' },

  // Microsoft update, activation and Defender's own service hosts: a Block stops patching and
  // signature updates, or cuts the sensor off from the very service that pushes indicators.
  { value: 'windowsupdate.com', why: 'Windows Update content' },
  { value: 'update.microsoft.com', why: 'Windows Update service' },
  { value: 'windowsupdate.microsoft.com', why: 'Windows Update service' },
  { value: 'download.microsoft.com', why: 'Microsoft downloads and update payloads' },
  { value: 'delivery.mp.microsoft.com', why: 'Delivery Optimization / Store updates' },
  { value: 'officecdn.microsoft.com', why: 'Microsoft 365 Apps updates' },
  { value: 'go.microsoft.com', why: 'Microsoft redirector used by updaters and installers' },
  { value: 'login.microsoftonline.com', why: 'Entra ID sign-in (every Microsoft 365 login)' },
  { value: 'login.microsoft.com', why: 'Entra ID sign-in' },
  { value: 'login.windows.net', why: 'Entra ID sign-in (legacy host)' },
  { value: 'securitycenter.windows.com', why: 'Defender for Endpoint service' },
  { value: 'securitycenter.microsoft.com', why: 'Defender for Endpoint API and portal' },
  { value: 'security.microsoft.com', why: 'Microsoft Defender portal and API' },
  { value: 'wdcp.microsoft.com', why: 'Defender cloud-delivered protection' },
  { value: 'wd.microsoft.com', why: 'Defender cloud-delivered protection' },
  { value: 'smartscreen.microsoft.com', why: 'SmartScreen reputation service' },
  { value: 'events.data.microsoft.com', why: 'Defender sensor telemetry (cyber data)' },
  { value: 'microsoft.com', why: 'Microsoft apex domain: a Block covers every subdomain above' },
  { value: 'windows.com', why: 'Windows services apex domain' },
  { value: 'office.com', why: 'Microsoft 365 apex domain' },
  { value: 'microsoftonline.com', why: 'Entra ID apex domain' },
  // Microsoft 365 apex domains (Microsoft's "Office 365 URLs and IP address ranges" list): a Block on
  // one cuts mail, files, meetings or sign-in for every user.
  { value: 'sharepoint.com', why: 'SharePoint Online and OneDrive for Business' },
  { value: 'sharepointonline.com', why: 'SharePoint Online content' },
  { value: 'outlook.com', why: 'Exchange Online / Outlook' },
  { value: 'office365.com', why: 'Microsoft 365 services' },
  { value: 'office.net', why: 'Microsoft 365 content delivery' },
  { value: 'live.com', why: 'Microsoft accounts and OneDrive' },
  { value: 'onmicrosoft.com', why: 'tenant domains of every Microsoft 365 customer' },
  { value: 'lync.com', why: 'Teams / Skype for Business' },
  { value: 'skype.com', why: 'Teams and Skype' },
  { value: 'msauth.net', why: 'Entra ID sign-in assets' },
  { value: 'msftauth.net', why: 'Entra ID sign-in assets' },
  { value: 'msauthimages.net', why: 'Entra ID sign-in branding' },
  { value: 'msocsp.com', why: 'Microsoft certificate status (OCSP)' },
  { value: 'msedge.net', why: 'Microsoft edge network (Teams, Office)' },
  { value: 'cloud.microsoft', why: 'Microsoft 365 apps domain' },
  { value: 'static.microsoft', why: 'Microsoft 365 static content' },

  // Connectivity tests: a Block makes devices report "no internet" (NCSI, captive-portal checks).
  { value: 'msftconnecttest.com', why: 'Windows network connectivity status indicator (NCSI)' },
  { value: 'msftncsi.com', why: 'Windows network connectivity status indicator (legacy)' },
  { value: 'captive.apple.com', why: 'Apple captive-portal check' },
  { value: 'connectivitycheck.gstatic.com', why: 'Android/Chrome connectivity check' },
  { value: 'detectportal.firefox.com', why: 'Firefox captive-portal check' },

  // OS update hosts of other platforms managed by the same fleet.
  { value: 'swcdn.apple.com', why: 'macOS software updates' },
  { value: 'mesu.apple.com', why: 'Apple update catalogue' },
  { value: 'apple.com', why: 'Apple apex domain (updates, activation)' },
  { value: 'archive.ubuntu.com', why: 'Ubuntu package mirror' },
  { value: 'security.ubuntu.com', why: 'Ubuntu security updates' },
  { value: 'deb.debian.org', why: 'Debian package mirror' },
  { value: 'dl.google.com', why: 'Chrome and Android updates' },

  // Certificate revocation and issuance: a Block makes TLS checks fail or stall everywhere.
  { value: 'crl.microsoft.com', why: 'Microsoft certificate revocation lists' },
  { value: 'ctldl.windowsupdate.com', why: 'Windows trusted root list updates' },
  { value: 'ocsp.digicert.com', why: 'DigiCert OCSP' },
  { value: 'crl3.digicert.com', why: 'DigiCert CRL' },
  { value: 'crl4.digicert.com', why: 'DigiCert CRL' },
  { value: 'digicert.com', why: 'DigiCert apex domain (OCSP, CRL, issuance)' },
  { value: 'ocsp.sectigo.com', why: 'Sectigo OCSP' },
  { value: 'ocsp.globalsign.com', why: 'GlobalSign OCSP' },
  { value: 'pki.goog', why: 'Google Trust Services OCSP/CRL' },
  { value: 'lencr.org', why: "Let's Encrypt OCSP/CRL" },
  { value: 'letsencrypt.org', why: "Let's Encrypt" },
  { value: 'ocsp.entrust.net', why: 'Entrust OCSP' },

  // Top sites: everyday work depends on them and they are almost never the attacker's own
  // infrastructure (abuse is of a URL path on them, which a Block on the domain would overshoot).
  { value: 'google.com', why: 'top site' },
  { value: 'youtube.com', why: 'top site' },
  { value: 'facebook.com', why: 'top site' },
  { value: 'amazon.com', why: 'top site' },
  { value: 'wikipedia.org', why: 'top site' },
  { value: 'linkedin.com', why: 'top site' },
  { value: 'github.com', why: 'top site; developer tooling' },
  { value: 'githubusercontent.com', why: 'GitHub content (every clone and release)' },
  { value: 'cloudflare.com', why: 'CDN used by a large share of sites' },
  { value: 'akamaiedge.net', why: 'Akamai CDN edge (Microsoft and Apple updates ride on it)' },
  { value: 'akamai.net', why: 'Akamai CDN' },
  { value: 'azureedge.net', why: 'Azure CDN' },
  { value: 'cloudfront.net', why: 'Amazon CDN (shared by thousands of sites)' },
  { value: 'amazonaws.com', why: 'AWS apex: a Block covers every customer endpoint' },
  { value: 'windows.net', why: 'Azure storage and services apex' },
  { value: 'azure.com', why: 'Azure apex' },
  { value: 'zoom.us', why: 'top site; meetings' },
  { value: 'slack.com', why: 'top site; chat' },
];
