import type { Command } from 'commander';
import { AdminClient } from './admin-client.ts';
import { AdminError } from './errors.ts';

export interface AdminContext {
  client: AdminClient;
  json: boolean;
}

/** What each admin command needs: a client for --server/--token (or CLP_SERVER/CLP_TOKEN) and --json. */
export type ContextOf = (command: Command) => AdminContext;

interface AdminOptions {
  server?: string;
  token?: string;
  json?: boolean;
  timeout?: string;
  caFile?: string;
  allowInsecureHttp?: boolean;
}

export function adminContext(
  command: Command,
  env: NodeJS.ProcessEnv = process.env,
  options: { requireToken?: boolean } = {},
): AdminContext {
  const given = command.optsWithGlobals<AdminOptions>();
  const server = given.server || env.CLP_SERVER;
  const token = given.token || env.CLP_TOKEN || '';
  if (!server) {
    throw new AdminError(
      'CLP_E_ADMIN_NO_SERVER',
      'no server given; pass --server URL or set CLP_SERVER (e.g. http://127.0.0.1:8080)',
    );
  }
  if (!/^https?:\/\//i.test(server)) {
    throw new AdminError('CLP_E_ADMIN_NO_SERVER', `--server ${server}: expected an http:// or https:// URL`);
  }
  if (!token && options.requireToken !== false) {
    throw new AdminError(
      'CLP_E_ADMIN_NO_TOKEN',
      'no API token given; pass --token TOKEN or set CLP_TOKEN (the server printed the first admin token at its first start)',
    );
  }
  const caFile = given.caFile || env.CLP_CA_FILE || undefined;
  const allowInsecureHttp = Boolean(given.allowInsecureHttp) || env.CLP_ALLOW_INSECURE_HTTP === '1';
  return {
    client: new AdminClient({ server, token, transport: { caFile, allowInsecureHttp } }),
    json: Boolean(given.json),
  };
}
