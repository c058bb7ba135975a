import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type CryptoKey,
  exportJWK,
  exportPKCS8,
  exportSPKI,
  generateKeyPair,
  type JWTPayload,
  SignJWT,
} from 'jose';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';

// Wrap (not replace) timingSafeEqual so the tests can see how static tokens are compared.
const tseCalls = vi.hoisted(() => [] as Array<[number, number]>);
vi.mock('node:crypto', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:crypto')>();
  return {
    ...real,
    timingSafeEqual: (a: NodeJS.ArrayBufferView, b: NodeJS.ArrayBufferView) => {
      tseCalls.push([a.byteLength, b.byteLength]);
      return real.timingSafeEqual(a, b);
    },
  };
});

import {
  allows,
  type AuthConfig,
  Authenticator,
  type AuthResult,
  type JwtConfig,
  sha256Hex,
} from '../../src/controlplane/auth.js';

const HS_SECRET = 'an-hs256-secret-that-is-at-least-32-bytes-long!';
const ADMIN_TOKEN = 'admin-token-0123456789abcdef';
const VIEWER_TOKEN = 'viewer-token-fedcba9876543210';

let dir: string;
let rsa: { publicKey: CryptoKey; privateKey: CryptoKey };
let rsaOther: { publicKey: CryptoKey; privateKey: CryptoKey };
let ec: { publicKey: CryptoKey; privateKey: CryptoKey };
let rsaPemFile: string;
let rsaPem: string;
let ecPemFile: string;
let ecJwksFile: string;

const now = () => Math.floor(Date.now() / 1000);

function jwtCfg(over: Partial<JwtConfig> & Pick<JwtConfig, 'algorithm'>): JwtConfig {
  return { roleClaim: 'role', clockToleranceSec: 30, ...over };
}

async function make(cfg: Partial<AuthConfig> = {}): Promise<Authenticator> {
  return Authenticator.create({
    tokens: cfg.tokens ?? [
      { name: 'ops', sha256: sha256Hex(ADMIN_TOKEN), role: 'admin' },
      { name: 'dash', sha256: sha256Hex(VIEWER_TOKEN), role: 'viewer' },
    ],
    jwt: cfg.jwt ?? null,
  });
}

function principalOf(r: AuthResult) {
  if (!r.ok) throw new Error(`expected success, got 401: ${r.description}`);
  return r.principal;
}

function failureOf(r: AuthResult): string {
  if (r.ok) throw new Error(`expected a 401, got principal ${JSON.stringify(r.principal)}`);
  expect(r.status).toBe(401);
  expect(r.error).toBe('UNAUTHORIZED');
  return r.description;
}

async function hs256(claims: JWTPayload, secret = HS_SECRET): Promise<string> {
  return new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).sign(new TextEncoder().encode(secret));
}

const b64url = (s: string) => Buffer.from(s, 'utf8').toString('base64url');

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ipgate-auth-'));
  rsa = await generateKeyPair('RS256', { extractable: true });
  rsaOther = await generateKeyPair('RS256', { extractable: true });
  ec = await generateKeyPair('ES256', { extractable: true });

  rsaPem = await exportSPKI(rsa.publicKey);
  rsaPemFile = join(dir, 'rsa.pem');
  await writeFile(rsaPemFile, rsaPem);

  ecPemFile = join(dir, 'ec.pem');
  await writeFile(ecPemFile, await exportSPKI(ec.publicKey));

  const ecJwk = { ...(await exportJWK(ec.publicKey)), kid: 'ec-1', alg: 'ES256', use: 'sig' };
  // An unrelated RSA key in the same set must not confuse ES256 key selection.
  const otherJwk = { ...(await exportJWK(rsaOther.publicKey)), kid: 'rsa-x', alg: 'RS256' };
  ecJwksFile = join(dir, 'jwks.json');
  await writeFile(ecJwksFile, JSON.stringify({ keys: [otherJwk, ecJwk] }));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

afterEach(() => {
  tseCalls.length = 0;
});

describe('sha256Hex', () => {
  it('is the lowercase hex SHA-256 of the UTF-8 token', () => {
    expect(sha256Hex('abc')).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    // UTF-8 (c3 a9), not Latin-1.
    expect(sha256Hex('\u00e9')).toBe('4a99557e4033c3539de2eb65472017cad5f9557f7a0625a09f1c3f6e2ba69c4c');
  });
});

describe('Authorization header parsing', () => {
  it('accepts the Bearer scheme in any case', async () => {
    const auth = await make();
    for (const scheme of ['Bearer', 'bearer', 'BEARER', 'bEaReR']) {
      const p = principalOf(await auth.authenticate(`${scheme} ${ADMIN_TOKEN}`));
      expect(p).toEqual({ actor: 'token:ops', role: 'admin', via: 'token' });
    }
  });

  it('tolerates surrounding whitespace and repeated separators between scheme and token', async () => {
    const auth = await make();
    expect(principalOf(await auth.authenticate(`  Bearer   ${ADMIN_TOKEN}  `)).actor).toBe('token:ops');
  });

  it('rejects a missing or empty header', async () => {
    const auth = await make();
    expect(failureOf(await auth.authenticate(undefined))).toBe('missing Authorization header');
    expect(failureOf(await auth.authenticate(''))).toBe('empty Authorization header');
    expect(failureOf(await auth.authenticate('   '))).toBe('empty Authorization header');
  });

  it('rejects other schemes, even with a valid token', async () => {
    const auth = await make();
    for (const h of [`Basic ${ADMIN_TOKEN}`, `Token ${ADMIN_TOKEN}`, `Bearer:${ADMIN_TOKEN}`, ADMIN_TOKEN, `Bearer${ADMIN_TOKEN}`]) {
      expect(failureOf(await auth.authenticate(h)), h).toBe('unsupported Authorization scheme (expected Bearer)');
    }
  });

  it('rejects an empty bearer token', async () => {
    const auth = await make();
    expect(failureOf(await auth.authenticate('Bearer'))).toBe('empty bearer token');
    expect(failureOf(await auth.authenticate('Bearer    '))).toBe('empty bearer token');
  });

  it('rejects extra credential parts, even when one of them is valid', async () => {
    const auth = await make();
    for (const h of [`Bearer ${ADMIN_TOKEN} x`, `Bearer x ${ADMIN_TOKEN}`, `Bearer ${ADMIN_TOKEN}\t${ADMIN_TOKEN}`]) {
      expect(failureOf(await auth.authenticate(h)), h).toBe(
        'malformed Authorization header: expected exactly one bearer token',
      );
    }
  });
});

describe('static tokens', () => {
  it('maps each token to its configured name and role', async () => {
    const auth = await make();
    expect(principalOf(await auth.authenticate(`Bearer ${ADMIN_TOKEN}`))).toEqual({
      actor: 'token:ops',
      role: 'admin',
      via: 'token',
    });
    expect(principalOf(await auth.authenticate(`Bearer ${VIEWER_TOKEN}`))).toEqual({
      actor: 'token:dash',
      role: 'viewer',
      via: 'token',
    });
  });

  it('accepts an uppercase hex digest in config', async () => {
    const auth = await make({ tokens: [{ name: 'up', sha256: sha256Hex(ADMIN_TOKEN).toUpperCase(), role: 'admin' }] });
    expect(principalOf(await auth.authenticate(`Bearer ${ADMIN_TOKEN}`)).actor).toBe('token:up');
  });

  it('rejects a wrong token of the same length and of other lengths, without throwing', async () => {
    const auth = await make();
    const sameLength = ADMIN_TOKEN.slice(0, -1) + (ADMIN_TOKEN.endsWith('f') ? 'e' : 'f');
    for (const t of [sameLength, 'x', ADMIN_TOKEN + 'x', ADMIN_TOKEN.slice(1), 'y'.repeat(10_000), sha256Hex(ADMIN_TOKEN)]) {
      await expect(auth.authenticate(`Bearer ${t}`)).resolves.toEqual({
        ok: false,
        status: 401,
        error: 'UNAUTHORIZED',
        description: 'invalid token',
      });
    }
  });

  it('compares 32-byte digests with timingSafeEqual against every configured token, with no early exit', async () => {
    const auth = await make({
      tokens: [
        { name: 'a', sha256: sha256Hex('token-a'), role: 'admin' },
        { name: 'b', sha256: sha256Hex('token-b'), role: 'viewer' },
        { name: 'c', sha256: sha256Hex('token-c'), role: 'viewer' },
      ],
    });
    tseCalls.length = 0;
    // Matches the FIRST entry: all three must still be compared.
    expect(principalOf(await auth.authenticate('Bearer token-a')).actor).toBe('token:a');
    expect(tseCalls).toEqual([
      [32, 32],
      [32, 32],
      [32, 32],
    ]);
    tseCalls.length = 0;
    // A wildly different length is still compared as 32-byte digests.
    failureOf(await auth.authenticate(`Bearer ${'z'.repeat(5000)}`));
    expect(tseCalls).toEqual([
      [32, 32],
      [32, 32],
      [32, 32],
    ]);
  });

  it('rejects invalid or duplicate digests at create, naming the config key', async () => {
    await expect(make({ tokens: [{ name: 'a', sha256: 'abc', role: 'admin' }] })).rejects.toThrow(/auth\.tokens\[0\]\.sha256/);
    await expect(make({ tokens: [{ name: 'a', sha256: ADMIN_TOKEN, role: 'admin' }] })).rejects.toThrow(/auth\.tokens\[0\]\.sha256/);
    await expect(
      make({
        tokens: [
          { name: 'a', sha256: sha256Hex('t'), role: 'viewer' },
          { name: 'b', sha256: sha256Hex('t').toUpperCase(), role: 'admin' },
        ],
      }),
    ).rejects.toThrow(/auth\.tokens\[1\]\.sha256 duplicates auth\.tokens\[0\]/);
  });

  it('with no tokens and no JWT config, everything is rejected', async () => {
    const auth = await make({ tokens: [] });
    expect(failureOf(await auth.authenticate(`Bearer ${ADMIN_TOKEN}`))).toBe('invalid token');
  });
});

describe('allows', () => {
  it('lets a viewer read only', () => {
    expect(allows('viewer', 'GET')).toBe(true);
    expect(allows('viewer', 'HEAD')).toBe(true);
    for (const m of ['POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'get', 'head']) expect(allows('viewer', m), m).toBe(false);
  });

  it('lets an admin do anything', () => {
    for (const m of ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']) expect(allows('admin', m), m).toBe(true);
  });

  it('combines with authentication: the viewer token may GET but not DELETE', async () => {
    const auth = await make();
    const viewer = principalOf(await auth.authenticate(`Bearer ${VIEWER_TOKEN}`));
    const admin = principalOf(await auth.authenticate(`Bearer ${ADMIN_TOKEN}`));
    expect(allows(viewer.role, 'GET')).toBe(true);
    expect(allows(viewer.role, 'DELETE')).toBe(false);
    expect(allows(admin.role, 'DELETE')).toBe(true);
  });
});

describe('JWT HS256', () => {
  const cfg = (over: Partial<JwtConfig> = {}) => jwtCfg({ algorithm: 'HS256', secret: HS_SECRET, ...over });

  it('accepts a valid token, with the actor from sub', async () => {
    const auth = await make({ jwt: cfg() });
    const t = await hs256({ sub: 'alice', role: 'admin', exp: now() + 300 });
    expect(principalOf(await auth.authenticate(`Bearer ${t}`))).toEqual({ actor: 'alice', role: 'admin', via: 'jwt' });
  });

  it('rejects a token signed with another secret', async () => {
    const auth = await make({ jwt: cfg() });
    const t = await hs256({ sub: 'alice', role: 'admin' }, 'another-secret-that-is-also-32-bytes-long!!');
    expect(failureOf(await auth.authenticate(`Bearer ${t}`))).toBe('invalid token signature');
  });

  it('rejects a token whose payload was tampered with', async () => {
    const auth = await make({ jwt: cfg() });
    const t = await hs256({ sub: 'bob', role: 'viewer' });
    const [h, , s] = t.split('.');
    const forged = `${h}.${b64url(JSON.stringify({ sub: 'bob', role: 'admin' }))}.${s}`;
    expect(failureOf(await auth.authenticate(`Bearer ${forged}`))).toBe('invalid token signature');
  });

  it('rejects an expired token beyond the clock tolerance, accepts one within it', async () => {
    const auth = await make({ jwt: cfg({ clockToleranceSec: 30 }) });
    const expired = await hs256({ sub: 'a', role: 'admin', exp: now() - 120 });
    const d = failureOf(await auth.authenticate(`Bearer ${expired}`));
    expect(d).toBe('token expired');
    const justExpired = await hs256({ sub: 'a', role: 'admin', exp: now() - 10 });
    expect(principalOf(await auth.authenticate(`Bearer ${justExpired}`)).role).toBe('admin');
    // With zero tolerance the same token is expired.
    const strict = await make({ jwt: cfg({ clockToleranceSec: 0 }) });
    expect(failureOf(await strict.authenticate(`Bearer ${justExpired}`))).toBe('token expired');
  });

  it('rejects a token that is not yet valid (nbf in the future beyond tolerance)', async () => {
    const auth = await make({ jwt: cfg({ clockToleranceSec: 30 }) });
    const future = await hs256({ sub: 'a', role: 'admin', nbf: now() + 120 });
    expect(failureOf(await auth.authenticate(`Bearer ${future}`))).toBe('token not yet valid');
    const nearFuture = await hs256({ sub: 'a', role: 'admin', nbf: now() + 10 });
    expect(principalOf(await auth.authenticate(`Bearer ${nearFuture}`)).actor).toBe('a');
  });

  it('checks issuer and audience when configured', async () => {
    const auth = await make({ jwt: cfg({ issuer: 'https://idp.example', audience: 'ipgate' }) });
    const good = await hs256({ sub: 'a', role: 'admin', iss: 'https://idp.example', aud: 'ipgate' });
    expect(principalOf(await auth.authenticate(`Bearer ${good}`)).actor).toBe('a');
    const goodAudArray = await hs256({ sub: 'a', role: 'admin', iss: 'https://idp.example', aud: ['other', 'ipgate'] });
    expect(principalOf(await auth.authenticate(`Bearer ${goodAudArray}`)).actor).toBe('a');

    const wrongIss = await hs256({ sub: 'a', role: 'admin', iss: 'https://evil.example', aud: 'ipgate' });
    expect(failureOf(await auth.authenticate(`Bearer ${wrongIss}`))).toBe('token issuer not accepted');
    const noIss = await hs256({ sub: 'a', role: 'admin', aud: 'ipgate' });
    expect(failureOf(await auth.authenticate(`Bearer ${noIss}`))).toBe('token issuer not accepted');
    const wrongAud = await hs256({ sub: 'a', role: 'admin', iss: 'https://idp.example', aud: 'other' });
    expect(failureOf(await auth.authenticate(`Bearer ${wrongAud}`))).toBe('token audience not accepted');
    const noAud = await hs256({ sub: 'a', role: 'admin', iss: 'https://idp.example' });
    expect(failureOf(await auth.authenticate(`Bearer ${noAud}`))).toBe('token audience not accepted');
  });

  it('does not check issuer/audience when not configured', async () => {
    const auth = await make({ jwt: cfg() });
    const t = await hs256({ sub: 'a', role: 'viewer', iss: 'anyone', aud: 'anything' });
    expect(principalOf(await auth.authenticate(`Bearer ${t}`)).role).toBe('viewer');
  });

  it('rejects alg:none tokens', async () => {
    const auth = await make({ jwt: cfg() });
    const body = b64url(JSON.stringify({ sub: 'mallory', role: 'admin', exp: now() + 300 }));
    for (const header of [{ alg: 'none' }, { alg: 'none', typ: 'JWT' }, { alg: 'None' }]) {
      const t = `${b64url(JSON.stringify(header))}.${body}.`;
      expect(failureOf(await auth.authenticate(`Bearer ${t}`)), JSON.stringify(header)).toBe('token algorithm not allowed');
    }
    // Same with a junk signature segment.
    const withSig = `${b64url(JSON.stringify({ alg: 'none' }))}.${body}.${b64url('sig')}`;
    expect(failureOf(await auth.authenticate(`Bearer ${withSig}`))).toBe('token algorithm not allowed');
  });

  it('rejects a valid RS256 token when HS256 is configured', async () => {
    const auth = await make({ jwt: cfg() });
    const t = await new SignJWT({ sub: 'a', role: 'admin' }).setProtectedHeader({ alg: 'RS256' }).sign(rsa.privateKey);
    expect(failureOf(await auth.authenticate(`Bearer ${t}`))).toBe('token algorithm not allowed');
  });

  it('rejects malformed JWT-shaped credentials without throwing', async () => {
    const auth = await make({ jwt: cfg() });
    for (const t of ['a.b.c', `${b64url('{}')}.${b64url('not json')}.xx`, `${b64url('[1]')}.${b64url('{}')}.xx`]) {
      expect(failureOf(await auth.authenticate(`Bearer ${t}`)), t).toBe('invalid token');
    }
  });

  it('requires a secret of at least 32 bytes, naming the key', async () => {
    await expect(make({ jwt: cfg({ secret: 'x'.repeat(31) }) })).rejects.toThrow(/admin\.jwt\.secret/);
    await expect(make({ jwt: cfg({ secret: undefined }) })).rejects.toThrow(/admin\.jwt\.secret/);
    await expect(make({ jwt: cfg({ secret: 'x'.repeat(32) }) })).resolves.toBeInstanceOf(Authenticator);
  });

  it('does not echo the secret or the token in a failure description', async () => {
    const auth = await make({ jwt: cfg() });
    const t = await hs256({ sub: 'a', role: 'admin', exp: now() - 1000 });
    const d = failureOf(await auth.authenticate(`Bearer ${t}`));
    expect(d).not.toContain(HS_SECRET);
    expect(d).not.toContain(t);
  });
});

describe('JWT roles and actors', () => {
  const cfg = (over: Partial<JwtConfig> = {}) => jwtCfg({ algorithm: 'HS256', secret: HS_SECRET, ...over });

  it('reads the role from a string or an array (admin wins)', async () => {
    const auth = await make({ jwt: cfg() });
    const role = async (claim: unknown) =>
      principalOf(await auth.authenticate(`Bearer ${await hs256({ sub: 's', role: claim } as JWTPayload)}`)).role;
    expect(await role('viewer')).toBe('viewer');
    expect(await role('admin')).toBe('admin');
    expect(await role(['viewer'])).toBe('viewer');
    expect(await role(['viewer', 'admin'])).toBe('admin');
    expect(await role(['admin', 'viewer'])).toBe('admin');
    expect(await role(['other', 'viewer'])).toBe('viewer');
  });

  it('authenticates but refuses a token without an admin or viewer role', async () => {
    const auth = await make({ jwt: cfg() });
    for (const claims of [{ sub: 's' }, { sub: 's', role: 'root' }, { sub: 's', role: ['ops'] }, { sub: 's', role: 1 }, { sub: 's', role: 'Admin' }]) {
      const t = await hs256(claims as JWTPayload);
      expect(failureOf(await auth.authenticate(`Bearer ${t}`)), JSON.stringify(claims)).toBe('token has no admin or viewer role');
    }
  });

  it('uses the configured roleClaim (and only it)', async () => {
    const auth = await make({ jwt: cfg({ roleClaim: 'ipgate_role' }) });
    const ok = await hs256({ sub: 's', ipgate_role: ['viewer'] });
    expect(principalOf(await auth.authenticate(`Bearer ${ok}`)).role).toBe('viewer');
    const wrongClaim = await hs256({ sub: 's', role: 'admin' });
    expect(failureOf(await auth.authenticate(`Bearer ${wrongClaim}`))).toBe('token has no admin or viewer role');
  });

  it('does not take a role from the prototype chain (defence against prototype pollution)', async () => {
    const auth = await make({ jwt: cfg({ roleClaim: 'ipgate_polluted_role' }) });
    const t = await hs256({ sub: 's' });
    Object.defineProperty(Object.prototype, 'ipgate_polluted_role', { value: 'admin', configurable: true });
    try {
      expect(failureOf(await auth.authenticate(`Bearer ${t}`))).toBe('token has no admin or viewer role');
    } finally {
      delete (Object.prototype as Record<string, unknown>)['ipgate_polluted_role'];
    }
    const own = await hs256({ sub: 's', ipgate_polluted_role: 'viewer' });
    expect(principalOf(await auth.authenticate(`Bearer ${own}`)).role).toBe('viewer');
  });

  it('takes the actor from sub, else email, else "jwt"', async () => {
    const auth = await make({ jwt: cfg() });
    const actor = async (claims: JWTPayload) => principalOf(await auth.authenticate(`Bearer ${await hs256(claims)}`)).actor;
    expect(await actor({ sub: 'alice', email: 'a@example.com', role: 'viewer' })).toBe('alice');
    expect(await actor({ email: 'a@example.com', role: 'viewer' })).toBe('a@example.com');
    expect(await actor({ sub: '', email: 'a@example.com', role: 'viewer' })).toBe('a@example.com');
    expect(await actor({ role: 'viewer' })).toBe('jwt');
  });
});

describe('static tokens and JWTs together', () => {
  it('a JWT-shaped static token is authenticated as the static token first', async () => {
    const jwtLooking = await hs256({ sub: 'someone', role: 'viewer' });
    const auth = await make({
      tokens: [{ name: 'jwtish', sha256: sha256Hex(jwtLooking), role: 'admin' }],
      jwt: jwtCfg({ algorithm: 'HS256', secret: HS_SECRET }),
    });
    expect(principalOf(await auth.authenticate(`Bearer ${jwtLooking}`))).toEqual({
      actor: 'token:jwtish',
      role: 'admin',
      via: 'token',
    });
    // And a JWT-shaped static token that is NOT a valid JWT for the configured key also works.
    const fake = `${b64url('{"alg":"none"}')}.${b64url('{}')}.`;
    const auth2 = await make({
      tokens: [{ name: 'fake', sha256: sha256Hex(fake), role: 'viewer' }],
      jwt: jwtCfg({ algorithm: 'HS256', secret: HS_SECRET }),
    });
    expect(principalOf(await auth2.authenticate(`Bearer ${fake}`)).actor).toBe('token:fake');
  });

  it('a JWT is not accepted when no jwt config is given', async () => {
    const auth = await make();
    const t = await hs256({ sub: 'a', role: 'admin' });
    expect(failureOf(await auth.authenticate(`Bearer ${t}`))).toBe('invalid token');
  });

  it('a non-JWT unknown token is rejected when jwt is configured', async () => {
    const auth = await make({ jwt: jwtCfg({ algorithm: 'HS256', secret: HS_SECRET }) });
    expect(failureOf(await auth.authenticate('Bearer nope'))).toBe('invalid token');
    expect(principalOf(await auth.authenticate(`Bearer ${VIEWER_TOKEN}`)).actor).toBe('token:dash');
  });
});

describe('JWT RS256 / ES256', () => {
  it('RS256 via a PEM SPKI file', async () => {
    const auth = await make({ jwt: jwtCfg({ algorithm: 'RS256', publicKeyFile: rsaPemFile, audience: 'ipgate' }) });
    const t = await new SignJWT({ sub: 'rs-user', role: 'viewer', aud: 'ipgate' })
      .setProtectedHeader({ alg: 'RS256' })
      .setExpirationTime('5m')
      .sign(rsa.privateKey);
    expect(principalOf(await auth.authenticate(`Bearer ${t}`))).toEqual({ actor: 'rs-user', role: 'viewer', via: 'jwt' });

    const otherKey = await new SignJWT({ sub: 'rs-user', role: 'admin', aud: 'ipgate' })
      .setProtectedHeader({ alg: 'RS256' })
      .sign(rsaOther.privateKey);
    expect(failureOf(await auth.authenticate(`Bearer ${otherKey}`))).toBe('invalid token signature');
  });

  it('algorithm confusion: an HS256 token keyed with the RSA public key PEM is rejected', async () => {
    const auth = await make({ jwt: jwtCfg({ algorithm: 'RS256', publicKeyFile: rsaPemFile }) });
    for (const secret of [rsaPem, rsaPem.trim()]) {
      const t = await new SignJWT({ sub: 'mallory', role: 'admin' })
        .setProtectedHeader({ alg: 'HS256' })
        .sign(new TextEncoder().encode(secret));
      expect(failureOf(await auth.authenticate(`Bearer ${t}`))).toBe('token algorithm not allowed');
    }
  });

  it('an ES256 token is rejected by an RS256 config', async () => {
    const auth = await make({ jwt: jwtCfg({ algorithm: 'RS256', publicKeyFile: rsaPemFile }) });
    const t = await new SignJWT({ sub: 'a', role: 'admin' }).setProtectedHeader({ alg: 'ES256' }).sign(ec.privateKey);
    expect(failureOf(await auth.authenticate(`Bearer ${t}`))).toBe('token algorithm not allowed');
  });

  it('ES256 via a PEM SPKI file', async () => {
    const auth = await make({ jwt: jwtCfg({ algorithm: 'ES256', publicKeyFile: ecPemFile }) });
    const t = await new SignJWT({ email: 'e@example.com', role: ['admin'] }).setProtectedHeader({ alg: 'ES256' }).sign(ec.privateKey);
    expect(principalOf(await auth.authenticate(`Bearer ${t}`))).toEqual({ actor: 'e@example.com', role: 'admin', via: 'jwt' });
  });

  it('ES256 via a local JWKS file', async () => {
    const auth = await make({ jwt: jwtCfg({ algorithm: 'ES256', jwksFile: ecJwksFile, issuer: 'idp' }) });
    const t = await new SignJWT({ sub: 'es-user', role: 'admin', iss: 'idp' })
      .setProtectedHeader({ alg: 'ES256', kid: 'ec-1' })
      .setExpirationTime('5m')
      .sign(ec.privateKey);
    expect(principalOf(await auth.authenticate(`Bearer ${t}`))).toEqual({ actor: 'es-user', role: 'admin', via: 'jwt' });

    const noKid = await new SignJWT({ sub: 'es-user', role: 'viewer', iss: 'idp' }).setProtectedHeader({ alg: 'ES256' }).sign(ec.privateKey);
    expect(principalOf(await auth.authenticate(`Bearer ${noKid}`)).role).toBe('viewer');

    const unknownKid = await new SignJWT({ sub: 'es-user', role: 'admin', iss: 'idp' })
      .setProtectedHeader({ alg: 'ES256', kid: 'nope' })
      .sign(ec.privateKey);
    expect(failureOf(await auth.authenticate(`Bearer ${unknownKid}`))).toBe('no key matches the token');

    const otherEc = await generateKeyPair('ES256');
    const wrongKey = await new SignJWT({ sub: 'x', role: 'admin', iss: 'idp' })
      .setProtectedHeader({ alg: 'ES256', kid: 'ec-1' })
      .sign(otherEc.privateKey);
    expect(failureOf(await auth.authenticate(`Bearer ${wrongKey}`))).toBe('invalid token signature');

    // The RSA key in the same JWKS is not usable: alg is pinned to ES256.
    const rsSigned = await new SignJWT({ sub: 'x', role: 'admin', iss: 'idp' })
      .setProtectedHeader({ alg: 'RS256', kid: 'rsa-x' })
      .sign(rsaOther.privateKey);
    expect(failureOf(await auth.authenticate(`Bearer ${rsSigned}`))).toBe('token algorithm not allowed');
  });
});

describe('key configuration errors at create', () => {
  it('a missing publicKeyFile throws naming admin.jwt.publicKeyFile', async () => {
    await expect(
      make({ jwt: jwtCfg({ algorithm: 'RS256', publicKeyFile: join(dir, 'does-not-exist.pem') }) }),
    ).rejects.toThrow(/admin\.jwt\.publicKeyFile.*ENOENT/);
  });

  it('a publicKeyFile that is not a PEM SPKI key throws naming the key, without echoing the content', async () => {
    const junk = join(dir, 'junk.pem');
    await writeFile(junk, 'SECRET-LOOKING-CONTENT not a key');
    const err = await make({ jwt: jwtCfg({ algorithm: 'RS256', publicKeyFile: junk }) }).then(
      () => null,
      (e: unknown) => e as Error,
    );
    expect(err).toBeInstanceOf(Error);
    expect(err?.message).toMatch(/admin\.jwt\.publicKeyFile/);
    expect(err?.message).not.toContain('SECRET-LOOKING-CONTENT');
  });

  it('a private key (PKCS8) in publicKeyFile is rejected', async () => {
    const priv = join(dir, 'private.pem');
    await writeFile(priv, await exportPKCS8(rsa.privateKey));
    await expect(make({ jwt: jwtCfg({ algorithm: 'RS256', publicKeyFile: priv }) })).rejects.toThrow(/admin\.jwt\.publicKeyFile/);
  });

  it('a key of the wrong type for the algorithm is rejected', async () => {
    await expect(make({ jwt: jwtCfg({ algorithm: 'RS256', publicKeyFile: ecPemFile }) })).rejects.toThrow(/admin\.jwt\.publicKeyFile/);
    await expect(make({ jwt: jwtCfg({ algorithm: 'ES256', publicKeyFile: rsaPemFile }) })).rejects.toThrow(/admin\.jwt\.publicKeyFile/);
  });

  it('a bad jwksFile throws naming admin.jwt.jwksFile', async () => {
    const notJson = join(dir, 'bad.json');
    await writeFile(notJson, '{ nope');
    await expect(make({ jwt: jwtCfg({ algorithm: 'ES256', jwksFile: notJson }) })).rejects.toThrow(/admin\.jwt\.jwksFile/);
    const notJwks = join(dir, 'notjwks.json');
    await writeFile(notJwks, JSON.stringify({ foo: [] }));
    await expect(make({ jwt: jwtCfg({ algorithm: 'ES256', jwksFile: notJwks }) })).rejects.toThrow(/admin\.jwt\.jwksFile/);
    // Only an RSA key, but ES256 configured: nothing usable.
    const onlyRsa = join(dir, 'only-rsa.json');
    await writeFile(onlyRsa, JSON.stringify({ keys: [await exportJWK(rsa.publicKey)] }));
    await expect(make({ jwt: jwtCfg({ algorithm: 'ES256', jwksFile: onlyRsa }) })).rejects.toThrow(/admin\.jwt\.jwksFile.*no ES256/);
    // A private key in the JWKS.
    const withPrivate = join(dir, 'private-jwks.json');
    await writeFile(withPrivate, JSON.stringify({ keys: [await exportJWK(ec.privateKey)] }));
    await expect(make({ jwt: jwtCfg({ algorithm: 'ES256', jwksFile: withPrivate }) })).rejects.toThrow(/admin\.jwt\.jwksFile.*not a public key/);
    await expect(
      make({ jwt: jwtCfg({ algorithm: 'ES256', jwksFile: join(dir, 'missing.json') }) }),
    ).rejects.toThrow(/admin\.jwt\.jwksFile/);
  });

  it('RS256/ES256 need exactly one of publicKeyFile / jwksFile, and no secret', async () => {
    await expect(make({ jwt: jwtCfg({ algorithm: 'RS256' }) })).rejects.toThrow(/admin\.jwt\.publicKeyFile or admin\.jwt\.jwksFile/);
    await expect(
      make({ jwt: jwtCfg({ algorithm: 'ES256', publicKeyFile: ecPemFile, jwksFile: ecJwksFile }) }),
    ).rejects.toThrow(/exactly one/);
    await expect(
      make({ jwt: jwtCfg({ algorithm: 'RS256', publicKeyFile: rsaPemFile, secret: HS_SECRET }) }),
    ).rejects.toThrow(/admin\.jwt\.secret/);
    await expect(
      make({ jwt: jwtCfg({ algorithm: 'HS256', secret: HS_SECRET, publicKeyFile: rsaPemFile }) }),
    ).rejects.toThrow(/admin\.jwt\.publicKeyFile/);
  });

  it('rejects an unknown algorithm and a bad clock tolerance', async () => {
    await expect(
      make({ jwt: jwtCfg({ algorithm: 'none' as unknown as 'HS256', secret: HS_SECRET }) }),
    ).rejects.toThrow(/admin\.jwt\.algorithm/);
    await expect(
      make({ jwt: jwtCfg({ algorithm: 'HS256', secret: HS_SECRET, clockToleranceSec: -1 }) }),
    ).rejects.toThrow(/admin\.jwt\.clockToleranceSec/);
  });
});
