// OData paging as Defender's APIs do it: follow `@odata.nextLink`; a server that pages without
// links (the link's form is not documented) is asked for `$skip` until a short page. A link is
// followed only on the API host itself: the caller attaches its bearer token to every page.

export interface ODataPage<T> {
  rows: T[];
  /** `@odata.nextLink` as the server sent it (checked here, so any JSON value may come). */
  nextLink: unknown;
}

export interface ODataPaging {
  /** The configured API base URL: a nextLink elsewhere is refused. */
  apiBase: string;
  maxPages?: number;
}

export class ODataLinkError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ODataLinkError';
  }
}

/** The next URL to ask for: a path, or an absolute link on the API's own origin. */
export function followableLink(link: unknown, apiBase: string): string {
  if (typeof link !== 'string' || link === '') throw new ODataLinkError('@odata.nextLink is not a URL string');
  if (link.startsWith('/') && !link.startsWith('//')) return link;
  let target: URL;
  try {
    target = new URL(link);
  } catch {
    throw new ODataLinkError('@odata.nextLink is neither a path nor an absolute URL');
  }
  const api = new URL(apiBase);
  if (target.origin !== api.origin) {
    throw new ODataLinkError(`refusing @odata.nextLink to ${target.origin}: only links on the configured API host ${api.origin} are followed`);
  }
  return link;
}

export async function* odataPages<T>(firstUrl: string, pageSize: number, fetchPage: (url: string) => Promise<ODataPage<T>>, paging: ODataPaging): AsyncGenerator<T[]> {
  const maxPages = paging.maxPages ?? 10_000;
  let url: string | null = firstUrl;
  let total = 0;
  let sawNextLink = false;
  for (let page = 0; url && page < maxPages; page++) {
    const { rows, nextLink } = await fetchPage(url);
    total += rows.length;
    yield rows;
    if (nextLink !== null && nextLink !== undefined) {
      sawNextLink = true;
      url = followableLink(nextLink, paging.apiBase);
    } else if (!sawNextLink && pageSize > 0 && rows.length >= pageSize) {
      url = `${firstUrl}${firstUrl.includes('?') ? '&' : '?'}$skip=${total}`;
    } else {
      url = null;
    }
  }
}
