import { readFile } from 'node:fs/promises';
import { createSecureContext } from 'node:tls';

/** The certificate chain and private key the server serves HTTPS with (PEM files). */
export interface TlsFiles {
  certFile: string;
  keyFile: string;
}

export interface TlsMaterial {
  cert: Buffer;
  key: Buffer;
}

async function readPem(file: string, setting: string): Promise<Buffer> {
  try {
    return await readFile(file);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new Error(
      `${setting}=${file} cannot be read (${code ?? (error as Error).message}); give the path of a PEM file the server's user can read`,
    );
  }
}

/**
 * Reads and checks the pair: a certificate that does not match its key, or a file that is not
 * PEM, is refused here so that a bad renewal never replaces a working certificate.
 */
export async function loadTls(files: TlsFiles): Promise<TlsMaterial> {
  const cert = await readPem(files.certFile, 'CLP_TLS_CERT');
  const key = await readPem(files.keyFile, 'CLP_TLS_KEY');
  try {
    createSecureContext({ cert, key });
  } catch (error) {
    throw new Error(
      `CLP_TLS_CERT=${files.certFile} and CLP_TLS_KEY=${files.keyFile} are not a usable pair (${(error as Error).message}); give the PEM certificate chain and its private key`,
    );
  }
  return { cert, key };
}

/** CLP_TLS_CERT and CLP_TLS_KEY: both or neither. */
export function tlsFilesFromEnv(env: NodeJS.ProcessEnv): TlsFiles | undefined {
  const certFile = env.CLP_TLS_CERT ?? '';
  const keyFile = env.CLP_TLS_KEY ?? '';
  if (certFile === '' && keyFile === '') return undefined;
  if (certFile === '' || keyFile === '') {
    throw new Error(
      `set both CLP_TLS_CERT and CLP_TLS_KEY to serve HTTPS (only ${certFile ? 'CLP_TLS_CERT' : 'CLP_TLS_KEY'} is set)`,
    );
  }
  return { certFile, keyFile };
}
