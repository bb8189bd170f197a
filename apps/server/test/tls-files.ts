import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

export interface Certificate {
  certFile: string;
  keyFile: string;
  /** SHA-256 fingerprint as Node's `peerCertificate.fingerprint256` prints it. */
  fingerprint: string;
}

/** A self-signed certificate for 127.0.0.1 and localhost, made by openssl (the on-premises case). */
export function makeCertificate(dir: string, name: string): Certificate {
  const certFile = join(dir, `${name}.crt`);
  const keyFile = join(dir, `${name}.key`);
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-days',
      '2',
      '-subj',
      `/CN=${name}`,
      '-addext',
      'subjectAltName=IP:127.0.0.1,DNS:localhost',
      '-keyout',
      keyFile,
      '-out',
      certFile,
    ],
    { stdio: 'pipe' },
  );
  const fingerprint = execFileSync(
    'openssl',
    ['x509', '-in', certFile, '-noout', '-fingerprint', '-sha256'],
    {
      encoding: 'utf8',
    },
  )
    .trim()
    .replace(/^.*=/, '');
  return { certFile, keyFile, fingerprint };
}
