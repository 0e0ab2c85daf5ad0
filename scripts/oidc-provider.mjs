// A real OpenID Connect provider for the single sign-on tests: the npm package `oidc-provider`
// (installed by scripts/test.sh into .tools/npm) with its own sign-in and consent pages.
//
//   node scripts/oidc-provider.mjs --redirect-uri URI --client-secret SECRET --accounts FILE
//
// It listens on a free port of 127.0.0.1 and prints `oidc provider listening on <issuer>`.
// One confidential client, `statehouse` (client_secret_basic), may use it, with PKCE required.
// Any login name signs in with any password (the package's development pages); the accounts
// file, read again at every sign-in, gives a login name its claims, e.g.
//   {"alice": {"groups": ["statehouse-admins"]}, "bob": {"groups": ["platform-viewers"]}}
// A login name the file does not list gets `preferred_username` = the name and no groups.
// Set OIDC_PROVIDER_NPM to another npm prefix than <repository>/.tools/npm.

import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const { values: args } = parseArgs({
  options: {
    'redirect-uri': { type: 'string' },
    'client-secret': { type: 'string' },
    accounts: { type: 'string' },
  },
});
for (const name of ['redirect-uri', 'client-secret', 'accounts']) {
  if (!args[name]) {
    console.error(`--${name} is required`);
    process.exit(2);
  }
}

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const npm = process.env.OIDC_PROVIDER_NPM || join(root, '.tools', 'npm');
const entry = join(npm, 'node_modules', 'oidc-provider', 'lib', 'index.js');
const { default: Provider } = await import(pathToFileURL(entry).href);

function claimsOf(login) {
  let accounts = {};
  try {
    accounts = JSON.parse(readFileSync(args.accounts, 'utf8'));
  } catch (e) {
    console.error(`cannot read ${args.accounts}: ${e}`);
  }
  const listed = accounts[login] || {};
  return {
    sub: login,
    preferred_username: login,
    name: login,
    email: `${login}@example.test`,
    email_verified: true,
    groups: [],
    ...listed,
  };
}

const server = createServer();
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const issuer = `http://127.0.0.1:${server.address().port}`;

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: 'statehouse',
      client_secret: args['client-secret'],
      redirect_uris: [args['redirect-uri']],
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
    },
  ],
  pkce: { required: () => true },
  claims: {
    openid: ['sub'],
    profile: ['preferred_username', 'name'],
    email: ['email', 'email_verified'],
    groups: ['groups'],
  },
  async findAccount(ctx, id) {
    return {
      accountId: id,
      async claims() {
        return claimsOf(id);
      },
    };
  },
  features: { devInteractions: { enabled: true } },
  cookies: { keys: ['statehouse-tests-only'] },
});
provider.on('server_error', (ctx, err) => console.error('server_error', err));
provider.on('grant.error', (ctx, err) => console.error('grant.error', err.message, err.error_description || ''));

server.on('request', provider.callback());
console.log(`oidc provider listening on ${issuer}`);

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => process.exit(0));
}
