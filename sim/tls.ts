// A throw-away certificate for the loopback simulators. msal-node refuses non-https authorities,
// so the Entra simulator must speak TLS; child processes trust it through NODE_EXTRA_CA_CERTS.

import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import selfsigned from 'selfsigned';

export interface TestCertificate {
  /** PEM private key. */
  key: string;
  /** PEM certificate (self-signed, so it is also its own CA). */
  cert: string;
  /** Path of a PEM file holding `cert`, for NODE_EXTRA_CA_CERTS or an https agent's `ca`. */
  caPath: string;
}

let cached: Promise<TestCertificate> | undefined;

/** One certificate per process: RSA generation is the slow part and every simulator can share it. */
export function createTestCertificate(): Promise<TestCertificate> {
  cached ??= generate().catch((err: unknown) => {
    cached = undefined; // let a later call retry instead of caching the failure
    throw err;
  });
  return cached;
}

async function generate(): Promise<TestCertificate> {
  const attrs = [{ name: 'commonName', value: 'localhost' }, { name: 'organizationName', value: 'ThreatBridge simulator' }];
  const pems = await new Promise<{ private: string; cert: string }>((resolve, reject) => {
    selfsigned.generate(
      attrs,
      {
        days: 7,
        keySize: 2048,
        algorithm: 'sha256',
        extensions: [
          // A self-signed leaf that is also its own trust anchor: OpenSSL accepts it as a CA file.
          { name: 'basicConstraints', cA: true },
          { name: 'keyUsage', keyCertSign: true, digitalSignature: true, keyEncipherment: true },
          { name: 'extKeyUsage', serverAuth: true },
          {
            name: 'subjectAltName',
            altNames: [
              { type: 2, value: 'localhost' }, // DNS
              { type: 7, ip: '127.0.0.1' }, // IP
            ],
          },
        ],
      },
      (err, result) => (err ? reject(err) : resolve(result)),
    );
  });
  const dir = await mkdtemp(join(tmpdir(), 'threatbridge-sim-tls-'));
  const caPath = join(dir, 'ca.pem');
  await writeFile(caPath, pems.cert, { mode: 0o644 });
  return { key: pems.private, cert: pems.cert, caPath };
}
