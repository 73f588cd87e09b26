// Start and stop a Ketang server for a test, and mint room links with `ketang token`.
//
// Env: KETANG_BIN (default ../target/debug/ketang relative to e2e/), RUST_LOG (passed through,
// default "info"), E2E_KEEP=1 keeps the temp dir (config, data, server.log), E2E_HTTPS=1 makes
// every server speak HTTPS (see `startServer`'s `https`).
//
// HTTPS: the server gets a certificate from `ketang cert` (for 127.0.0.1, 127.0.0.2,
// ketang.test and the hosts a test names); browsers launched after it trust that certificate
// by its public key (`trustArgs()`, added by `launchBrowser`), and `server.fetch` trusts it
// for the test's own requests (node's global fetch cannot be given a CA).
//
// The server reads every KETANG_* environment variable as a config key and refuses unknown
// ones (KETANG_BIN would stop it), so child processes get the environment without them.

import { spawn, execFile } from 'node:child_process';
import { createHash, createHmac, randomBytes, X509Certificate } from 'node:crypto';
import dgram from 'node:dgram';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);

export const E2E_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const KETANG_BIN = path.resolve(E2E_DIR, process.env.KETANG_BIN || '../target/debug/ketang');

const HEALTH_TIMEOUT_MS = 20_000;

/** The name test pages use for an HTTPS server: not localhost, so only real trust counts. */
export const TEST_HOST = 'ketang.test';
/** Where TEST_HOST points (`hostResolverArgs`), a loopback address other than 127.0.0.1. */
export const TEST_HOST_IP = '127.0.0.2';

/** Public-key hashes of the certificates of the HTTPS servers started in this process. */
const trustedSpkis = new Set();

/**
 * Chromium flags that trust every HTTPS test server started so far (by public key: no CA
 * import, no blanket --ignore-certificate-errors) and resolve TEST_HOST to TEST_HOST_IP.
 */
export function trustArgs() {
  if (trustedSpkis.size === 0) return [];
  return [
    `--ignore-certificate-errors-spki-list=${[...trustedSpkis].join(',')}`,
    `--host-resolver-rules=MAP ${TEST_HOST} ${TEST_HOST_IP}`,
  ];
}

/** A free TCP port on 127.0.0.1 (bind port 0, read it, close). */
export function freeTcpPort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** A free UDP port on 127.0.0.1. */
export function freeUdpPort() {
  return new Promise((resolve, reject) => {
    const sock = dgram.createSocket('udp4');
    sock.on('error', reject);
    sock.bind(0, '127.0.0.1', () => {
      const { port } = sock.address();
      sock.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** process.env without KETANG_* (config overrides for the server), plus `extra`. */
function childEnv(extra = {}) {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('KETANG_')));
  return { ...env, ...extra };
}

export class KetangServer {
  constructor({ dir, configPath, httpPort, udpPort, logPath, secretHex, tls = null }) {
    this.dir = dir;
    this.secretHex = secretHex;
    this.configPath = configPath;
    this.httpPort = httpPort;
    this.udpPort = udpPort;
    this.logPath = logPath;
    this.tls = tls; // {certPem, spki} when the server speaks HTTPS
    this.scheme = tls ? 'https' : 'http';
    this.baseUrl = null; // set by startServer: where the test itself reaches the server
    this.proc = null;
    this.exit = null; // {code, signal} once the process has exited
  }

  /** The server's origin at `host` (an address it listens on, or TEST_HOST). */
  origin(host) {
    return `${this.scheme}://${host}:${this.httpPort}`;
  }

  /**
   * `fetch` for the test's own requests: the global fetch over plain HTTP, node:https trusting
   * the server's certificate over HTTPS. `url` may be a path. Returns {status, ok, headers:
   * {get(name)}, text(), json()}.
   */
  async fetch(url, { method = 'GET', headers = {}, body = undefined, signal = undefined } = {}) {
    const full = url.startsWith('/') ? `${this.baseUrl}${url}` : url;
    if (!this.tls) return fetch(full, { method, headers, body, signal });
    const data = await new Promise((resolve, reject) => {
      const req = https.request(full, { method, headers, ca: this.tls.certPem, signal }, (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => resolve({ res, text: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end(body);
    });
    return {
      status: data.res.statusCode,
      ok: data.res.statusCode >= 200 && data.res.statusCode < 300,
      headers: { get: (name) => data.res.headers[name.toLowerCase()] ?? null },
      text: async () => data.text,
      json: async () => JSON.parse(data.text),
    };
  }

  /** Everything the server printed so far. */
  log() {
    try { return fs.readFileSync(this.logPath, 'utf8'); } catch { return '(no server log)'; }
  }

  /**
   * Mint a token with `ketang token ... --token-only`. `mode` is the lesson mode the link
   * carries (`dedicated`, `master`, `broadcast`; none: an open room).
   */
  async mintToken({ room, role, name, classroom = null, ttl = '2h', notBefore = null, mode = null }) {
    const args = ['token', '--config', this.configPath, '--room', room, '--role', role, '--name', name];
    if (classroom) args.push('--classroom', classroom);
    if (mode) args.push('--mode', mode);
    if (ttl) args.push('--ttl', ttl);
    if (notBefore) args.push('--not-before', notBefore);
    args.push('--token-only');
    let out;
    try {
      out = await execFileP(KETANG_BIN, args, { timeout: 15_000, env: childEnv() });
    } catch (err) {
      throw new Error(`ketang ${args.join(' ')} failed: ${err.message}\nstdout: ${err.stdout}\nstderr: ${err.stderr}`);
    }
    const token = out.stdout.trim();
    if (!/^[\w-]+\.[\w-]+\.[\w-]+$/.test(token)) {
      throw new Error(`ketang token printed something that is not a JWT:\n${out.stdout}\nstderr: ${out.stderr}`);
    }
    return token;
  }

  /**
   * A new admin API key, from `ketang admin create-key NAME --config CONFIG` (the same
   * database as the running server: the SQLite file in its data dir).
   */
  async createAdminKey(name = `e2e-${randomBytes(3).toString('hex')}`) {
    const args = ['admin', 'create-key', name, '--config', this.configPath];
    let out;
    try {
      out = await execFileP(KETANG_BIN, args, { timeout: 15_000, env: childEnv() });
    } catch (err) {
      throw new Error(`ketang ${args.join(' ')} failed: ${err.message}\nstdout: ${err.stdout}\nstderr: ${err.stderr}`);
    }
    const key = out.stdout.trim();
    if (!/^kt_[0-9a-f]{64}$/.test(key)) {
      throw new Error(`ketang admin create-key printed something that is not a key:\n${out.stdout}\nstderr: ${out.stderr}`);
    }
    return key;
  }

  /**
   * A new admin account, from `ketang admin create-user NAME --role ROLE --config CONFIG`:
   * resolves with its one-time password.
   */
  async createAdminUser(name, role = 'system') {
    const args = ['admin', 'create-user', name, '--role', role, '--config', this.configPath];
    let out;
    try {
      out = await execFileP(KETANG_BIN, args, { timeout: 15_000, env: childEnv() });
    } catch (err) {
      throw new Error(`ketang ${args.join(' ')} failed: ${err.message}\nstderr: ${err.stderr}`);
    }
    return out.stdout.trim();
  }

  /**
   * Sign a token (HS256) with the config's secret, for claims `ketang token` refuses to mint
   * (it will not mint a link that is already expired). `claims` are added to iat and jti.
   */
  signToken(claims) {
    const b64 = (obj) => Buffer.from(JSON.stringify(obj)).toString('base64url');
    const body = { iat: Math.floor(Date.now() / 1000), jti: randomBytes(16).toString('hex'), ...claims };
    const input = `${b64({ typ: 'JWT', alg: 'HS256' })}.${b64(body)}`;
    const sig = createHmac('sha256', Buffer.from(this.secretHex, 'hex')).update(input).digest('base64url');
    return `${input}.${sig}`;
  }

  /** The room link; `base` is another origin the server answers on (default 127.0.0.1). */
  roomUrl(room, token, base = this.baseUrl) {
    return `${base}/r/${encodeURIComponent(room)}?t=${encodeURIComponent(token)}`;
  }

  async stop() {
    const proc = this.proc;
    if (proc && !this.exit) {
      proc.kill('SIGTERM');
      const deadline = Date.now() + 5000;
      while (!this.exit && Date.now() < deadline) await sleep(50);
      if (!this.exit) {
        proc.kill('SIGKILL');
        while (!this.exit) await sleep(50);
      }
    }
    // scripts/test.sh searches every server's log for secrets.
    if (process.env.KETANG_E2E_LOG_DIR) {
      await fsp.copyFile(this.logPath, path.join(process.env.KETANG_E2E_LOG_DIR, `${path.basename(this.dir)}.log`)).catch(() => {});
    }
    if (!process.env.E2E_KEEP) await fsp.rm(this.dir, { recursive: true, force: true });
  }
}

/**
 * The server must serve this checkout's web client: a debug build reads `web-client/` at run
 * time from the directory it was compiled in, so a binary built in another checkout (sharing
 * the target directory) would test that checkout's client instead.
 */
async function checkServedClient(server) {
  const file = 'js/room.js';
  const local = await fsp.readFile(path.join(E2E_DIR, '..', 'web-client', file), 'utf8').catch(() => null);
  if (local === null) return;
  const res = await server.fetch(`/static/${file}`, { signal: AbortSignal.timeout(5000) });
  const served = await res.text();
  if (res.status === 200 && served === local) return;
  await server.stop();
  throw new Error(`${KETANG_BIN} does not serve this checkout's web-client/${file} (HTTP ${res.status}). `
    + 'A debug build serves web-client/ from the checkout it was compiled in: run `cargo build -p ketang` '
    + 'in this checkout (or point KETANG_BIN at a binary built here).');
}

/**
 * Write a temp config with free ports, start the server, and wait for GET /healthz → 200.
 * @param {object} [opts]
 * @param {string} [opts.extraConfig]  TOML appended to the config
 * @param {string} [opts.httpHost]     address for `http.listen` (default 127.0.0.1; 0.0.0.0 to be
 *   reachable from a network namespace; TEST_HOST_IP for pages at `server.origin(TEST_HOST)`)
 * @param {string} [opts.mediaHost]    address for `media.listen` (default 127.0.0.1)
 * @param {string[]} [opts.advertise]  `media.advertise`: the ICE candidate addresses
 * @param {boolean} [opts.https]       serve HTTPS with a `ketang cert` certificate (default:
 *   E2E_HTTPS=1); pages may then use `server.origin(TEST_HOST)`
 * @param {string[]} [opts.tlsHosts]   more names or addresses for the certificate
 */
export async function startServer({ extraConfig = '', httpHost = '127.0.0.1', mediaHost = '127.0.0.1', advertise = [],
  https: useHttps = process.env.E2E_HTTPS === '1', tlsHosts = [], mediaTcp = true } = {}) {
  if (!fs.existsSync(KETANG_BIN)) {
    throw new Error(`server binary not found at ${KETANG_BIN}: run \`cargo build -p ketang\` or set KETANG_BIN`);
  }
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'ketang-e2e-'));
  const httpPort = await freeTcpPort();
  const udpPort = await freeUdpPort();
  const dataDir = path.join(dir, 'data');
  await fsp.mkdir(dataDir);
  const configPath = path.join(dir, 'ketang.toml');
  const secretHex = randomBytes(32).toString('hex'); // 64 hex digits: the server decodes it as hex
  const tls = useHttps ? await makeCertificate(path.join(dir, 'tls'), [httpHost, ...tlsHosts]) : null;
  const config = [
    '[http]',
    `listen = "${httpHost}:${httpPort}"`,
    ...(tls ? [`tls_cert = ${JSON.stringify(tls.cert)}`, `tls_key = ${JSON.stringify(tls.key)}`] : []),
    '',
    '[media]',
    `listen = "${mediaHost}:${udpPort}"`,
    ...(advertise.length ? [`advertise = ${JSON.stringify(advertise)}`] : []),
    'shards = 1',
    ...(mediaTcp ? [] : ['tcp = false']),
    '',
    '[auth]',
    `secret = "${secretHex}"`,
    '',
    '[storage]',
    `data_dir = ${JSON.stringify(dataDir)}`,
    '',
    extraConfig,
  ].join('\n');
  await fsp.writeFile(configPath, config);
  const logPath = path.join(dir, 'server.log');
  const server = new KetangServer({ dir, configPath, httpPort, udpPort, logPath, secretHex, tls });
  server.baseUrl = server.origin(httpHost === '0.0.0.0' ? '127.0.0.1' : httpHost);

  const logFd = fs.openSync(logPath, 'a');
  const args = ['serve', '--config', configPath];
  fs.writeSync(logFd, `$ ${KETANG_BIN} ${args.join(' ')}\n`);
  const proc = spawn(KETANG_BIN, args, {
    cwd: dir,
    env: childEnv({ RUST_LOG: process.env.RUST_LOG || 'info', RUST_BACKTRACE: '1', NO_COLOR: '1' }),
    stdio: ['ignore', logFd, logFd],
  });
  fs.closeSync(logFd);
  server.proc = proc;
  proc.on('exit', (code, signal) => { server.exit = { code, signal }; });
  proc.on('error', (err) => { server.exit = { code: null, signal: null, error: err }; });

  const deadline = Date.now() + HEALTH_TIMEOUT_MS;
  let last = 'no answer yet';
  while (Date.now() < deadline) {
    if (server.exit) {
      const log = server.log();
      await server.stop();
      throw new Error(`server exited before /healthz answered (${JSON.stringify(server.exit)})\n--- server log ---\n${log}`);
    }
    try {
      const res = await server.fetch('/healthz', { signal: AbortSignal.timeout(1000) });
      const body = await res.text();
      if (res.status === 200) {
        await checkServedClient(server);
        return server;
      }
      last = `HTTP ${res.status}: ${body.slice(0, 200)}`;
    } catch (err) {
      last = String(err.cause?.code || err.message);
    }
    await sleep(100);
  }
  const log = server.log();
  await server.stop();
  throw new Error(`GET /healthz did not answer 200 within ${HEALTH_TIMEOUT_MS} ms (last: ${last})\n--- server log ---\n${log}`);
}

/**
 * `ketang cert` for the test hosts into `dir`: {cert, key, certPem, spki}. The SPKI hash is
 * read from what the command prints (the line for Chromium) and checked against the file.
 */
async function makeCertificate(dir, hosts) {
  const all = [...new Set(['127.0.0.1', TEST_HOST_IP, TEST_HOST, ...hosts.filter((h) => h && h !== '0.0.0.0')])];
  const args = ['cert', ...all.flatMap((h) => ['--host', h]), '--out', dir, '--days', '2'];
  let out;
  try {
    out = await execFileP(KETANG_BIN, args, { timeout: 15_000, env: childEnv() });
  } catch (err) {
    throw new Error(`ketang ${args.join(' ')} failed: ${err.message}\nstdout: ${err.stdout}\nstderr: ${err.stderr}`);
  }
  const spki = /--ignore-certificate-errors-spki-list=(\S+)/.exec(out.stdout)?.[1];
  const cert = path.join(dir, 'cert.pem');
  const certPem = await fsp.readFile(cert, 'utf8');
  const der = new X509Certificate(certPem).publicKey.export({ type: 'spki', format: 'der' });
  const expected = createHash('sha256').update(der).digest('base64');
  if (spki !== expected) throw new Error(`ketang cert printed SPKI ${spki}, the certificate has ${expected}:\n${out.stdout}`);
  trustedSpkis.add(spki);
  return { cert, key: path.join(dir, 'key.pem'), certPem, spki };
}
