/**
 * Authentication and roles for the admin API (`/apiops`).
 *
 * Credentials arrive as `Authorization: Bearer <credential>` and are either
 *  - a static token, configured by its SHA-256 hex digest (the plaintext is never stored), or
 *  - a JWT, verified with a key fixed at startup (HS256 secret, RS256/ES256 PEM SPKI or a local
 *    JWKS file), with the algorithm pinned so `alg: none` and HS/RS confusion are rejected.
 *
 * Static tokens are checked first, so a static token that happens to look like a JWT still works.
 * `authenticate` never throws: every failure is a 401 result with a short description that names
 * what was wrong without echoing the credential or any key material.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import {
  createLocalJWKSet,
  errors as joseErrors,
  importJWK,
  importSPKI,
  jwtVerify,
  type CryptoKey,
  type JSONWebKeySet,
  type JWK,
  type JWTPayload,
  type JWTVerifyGetKey,
} from 'jose';

export type Role = 'admin' | 'viewer';

export interface Principal {
  readonly actor: string;
  readonly role: Role;
  readonly via: 'token' | 'jwt';
}

export interface StaticTokenConfig {
  readonly name: string;
  /** Hex SHA-256 digest of the token (64 hex digits, either case). */
  readonly sha256: string;
  readonly role: Role;
}

export interface JwtConfig {
  readonly algorithm: 'HS256' | 'RS256' | 'ES256';
  /** HS256: the shared secret (at least 32 bytes of UTF-8). */
  readonly secret?: string;
  /** RS256/ES256: a PEM SPKI public key file. */
  readonly publicKeyFile?: string;
  /** RS256/ES256: a local JWKS JSON file. */
  readonly jwksFile?: string;
  readonly issuer?: string;
  readonly audience?: string;
  /** Top-level claim holding "admin" | "viewer" (a string, or an array: admin wins). Default "role". */
  readonly roleClaim: string;
  /** Allowed clock skew for exp/nbf, seconds. Default 30. */
  readonly clockToleranceSec: number;
}

export interface AuthConfig {
  readonly tokens: readonly StaticTokenConfig[];
  readonly jwt: JwtConfig | null;
}

export type AuthResult =
  | { ok: true; principal: Principal }
  | { ok: false; status: 401; error: 'UNAUTHORIZED'; description: string };

const HEX_SHA256 = /^[0-9a-fA-F]{64}$/;
/** Three base64url segments; the signature may be empty so that `alg: none` reaches the algorithm check. */
const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;
const MIN_HS256_SECRET_BYTES = 32;

interface TokenEntry {
  readonly digest: Buffer;
  readonly principal: Principal;
}

interface JwtVerifier {
  readonly key: Uint8Array | CryptoKey | JWTVerifyGetKey;
  readonly algorithm: JwtConfig['algorithm'];
  readonly issuer: string | undefined;
  readonly audience: string | undefined;
  readonly roleClaim: string;
  readonly clockToleranceSec: number;
}

function fail(description: string): AuthResult {
  return { ok: false, status: 401, error: 'UNAUTHORIZED', description };
}

export function sha256Hex(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/** 'viewer' may read (GET/HEAD), 'admin' may do anything. Methods are case-sensitive (RFC 9110 §9.1). */
export function allows(role: Role, method: string): boolean {
  if (role === 'admin') return true;
  if (role === 'viewer') return method === 'GET' || method === 'HEAD';
  return false;
}

function isRole(v: unknown): v is Role {
  return v === 'admin' || v === 'viewer';
}

export class Authenticator {
  private constructor(
    private readonly tokens: readonly TokenEntry[],
    private readonly jwt: JwtVerifier | null,
  ) {}

  /** Build once at startup: hash table of tokens, imported keys. Throws Error naming the config key on a bad key file. */
  static async create(cfg: AuthConfig): Promise<Authenticator> {
    const tokens: TokenEntry[] = [];
    const seen = new Map<string, number>();
    cfg.tokens.forEach((t, i) => {
      const key = `auth.tokens[${i}]`;
      if (typeof t.name !== 'string' || t.name.length === 0) throw new Error(`${key}.name must be a non-empty string`);
      if (!isRole(t.role)) throw new Error(`${key}.role must be "admin" or "viewer"`);
      if (typeof t.sha256 !== 'string' || !HEX_SHA256.test(t.sha256)) {
        throw new Error(`${key}.sha256 must be 64 hex digits (the SHA-256 of the token)`);
      }
      const hex = t.sha256.toLowerCase();
      const prev = seen.get(hex);
      if (prev !== undefined) throw new Error(`${key}.sha256 duplicates auth.tokens[${prev}].sha256`);
      seen.set(hex, i);
      tokens.push({
        digest: Buffer.from(hex, 'hex'),
        principal: Object.freeze({ actor: `token:${t.name}`, role: t.role, via: 'token' as const }),
      });
    });
    const jwt = cfg.jwt === null ? null : await buildJwtVerifier(cfg.jwt);
    return new Authenticator(tokens, jwt);
  }

  /** Authenticate the raw Authorization header value (or undefined). Never throws. */
  async authenticate(authorization: string | undefined): Promise<AuthResult> {
    try {
      const parsed = parseBearer(authorization);
      if (!parsed.ok) return fail(parsed.description);
      const credential = parsed.credential;

      const staticHit = this.matchStatic(credential);
      if (staticHit !== undefined) return { ok: true, principal: staticHit };

      if (this.jwt !== null && JWT_SHAPE.test(credential)) return await verifyJwt(this.jwt, credential);
      return fail('invalid token');
    } catch {
      return fail('invalid token');
    }
  }

  /** Compares against EVERY configured digest (no early exit); the first match in config order wins. */
  private matchStatic(credential: string): Principal | undefined {
    const presented = createHash('sha256').update(credential, 'utf8').digest();
    let hit: Principal | undefined;
    for (const entry of this.tokens) {
      const equal = timingSafeEqual(presented, entry.digest);
      if (equal && hit === undefined) hit = entry.principal;
    }
    return hit;
  }
}

type Parsed = { ok: true; credential: string } | { ok: false; description: string };

function parseBearer(header: string | undefined): Parsed {
  if (header === undefined) return { ok: false, description: 'missing Authorization header' };
  const value = header.trim();
  if (value.length === 0) return { ok: false, description: 'empty Authorization header' };
  const parts = value.split(/[ \t]+/);
  const scheme = parts[0] ?? '';
  if (scheme.toLowerCase() !== 'bearer') {
    return { ok: false, description: 'unsupported Authorization scheme (expected Bearer)' };
  }
  if (parts.length < 2) return { ok: false, description: 'empty bearer token' };
  if (parts.length > 2) return { ok: false, description: 'malformed Authorization header: expected exactly one bearer token' };
  const credential = parts[1] ?? '';
  if (credential.length === 0) return { ok: false, description: 'empty bearer token' };
  return { ok: true, credential };
}

async function verifyJwt(v: JwtVerifier, token: string): Promise<AuthResult> {
  let payload: JWTPayload;
  try {
    const options = {
      algorithms: [v.algorithm],
      clockTolerance: v.clockToleranceSec,
      ...(v.issuer !== undefined ? { issuer: v.issuer } : {}),
      ...(v.audience !== undefined ? { audience: v.audience } : {}),
    };
    // Overloads differ by key type; each branch fixes it.
    const result =
      typeof v.key === 'function' ? await jwtVerify(token, v.key, options) : await jwtVerify(token, v.key, options);
    payload = result.payload;
  } catch (err) {
    return fail(describeJoseError(err));
  }

  const role = roleFrom(Object.hasOwn(payload, v.roleClaim) ? payload[v.roleClaim] : undefined);
  if (role === null) return fail('token has no admin or viewer role');
  const actor = nonEmptyString(payload.sub) ?? nonEmptyString(payload['email']) ?? 'jwt';
  return { ok: true, principal: { actor, role, via: 'jwt' } };
}

function roleFrom(value: unknown): Role | null {
  if (isRole(value)) return value;
  if (Array.isArray(value)) {
    if (value.includes('admin')) return 'admin';
    if (value.includes('viewer')) return 'viewer';
  }
  return null;
}

function nonEmptyString(v: unknown): string | undefined {
  return typeof v === 'string' && v.length > 0 ? v : undefined;
}

function describeJoseError(err: unknown): string {
  if (err instanceof joseErrors.JWTExpired) return 'token expired';
  if (err instanceof joseErrors.JWTClaimValidationFailed) {
    switch (err.claim) {
      case 'nbf':
        return 'token not yet valid';
      case 'iss':
        return 'token issuer not accepted';
      case 'aud':
        return 'token audience not accepted';
      default:
        return 'token claims invalid';
    }
  }
  if (err instanceof joseErrors.JOSEAlgNotAllowed) return 'token algorithm not allowed';
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) return 'invalid token signature';
  if (err instanceof joseErrors.JWKSMultipleMatchingKeys) return 'invalid token signature';
  if (err instanceof joseErrors.JWKSNoMatchingKey) return 'no key matches the token';
  return 'invalid token';
}

// ---------------------------------------------------------------------------------------------
// Startup: key import

async function buildJwtVerifier(cfg: JwtConfig): Promise<JwtVerifier> {
  const alg = cfg.algorithm;
  if (alg !== 'HS256' && alg !== 'RS256' && alg !== 'ES256') {
    throw new Error('admin.jwt.algorithm must be one of HS256, RS256, ES256');
  }
  if (typeof cfg.roleClaim !== 'string' || cfg.roleClaim.length === 0) {
    throw new Error('admin.jwt.roleClaim must be a non-empty string');
  }
  if (typeof cfg.clockToleranceSec !== 'number' || !Number.isFinite(cfg.clockToleranceSec) || cfg.clockToleranceSec < 0) {
    throw new Error('admin.jwt.clockToleranceSec must be a non-negative number');
  }

  let key: JwtVerifier['key'];
  if (alg === 'HS256') {
    if (cfg.publicKeyFile !== undefined) throw new Error('admin.jwt.publicKeyFile is not used with HS256 (set admin.jwt.secret)');
    if (cfg.jwksFile !== undefined) throw new Error('admin.jwt.jwksFile is not used with HS256 (set admin.jwt.secret)');
    if (typeof cfg.secret !== 'string') throw new Error('admin.jwt.secret is required for HS256');
    const bytes = new TextEncoder().encode(cfg.secret);
    if (bytes.length < MIN_HS256_SECRET_BYTES) {
      throw new Error(`admin.jwt.secret must be at least ${MIN_HS256_SECRET_BYTES} bytes for HS256`);
    }
    key = bytes;
  } else {
    if (cfg.secret !== undefined) throw new Error(`admin.jwt.secret is not used with ${alg} (set admin.jwt.publicKeyFile or admin.jwt.jwksFile)`);
    const hasPem = cfg.publicKeyFile !== undefined;
    const hasJwks = cfg.jwksFile !== undefined;
    if (hasPem === hasJwks) {
      throw new Error(`admin.jwt: exactly one of admin.jwt.publicKeyFile or admin.jwt.jwksFile is required for ${alg}`);
    }
    key = cfg.publicKeyFile !== undefined ? await loadPem(cfg.publicKeyFile, alg) : await loadJwks(cfg.jwksFile ?? '', alg);
  }

  return {
    key,
    algorithm: alg,
    issuer: cfg.issuer,
    audience: cfg.audience,
    roleClaim: cfg.roleClaim,
    clockToleranceSec: cfg.clockToleranceSec,
  };
}

async function readKeyFile(configKey: string, file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code ?? 'read error';
    throw new Error(`${configKey}: cannot read ${JSON.stringify(file)} (${code})`, { cause });
  }
}

async function loadPem(file: string, alg: 'RS256' | 'ES256'): Promise<CryptoKey> {
  const configKey = 'admin.jwt.publicKeyFile';
  const pem = await readKeyFile(configKey, file);
  let key: CryptoKey;
  try {
    key = await importSPKI(pem, alg);
  } catch (cause) {
    // The message names the file, never its content.
    throw new Error(`${configKey}: ${JSON.stringify(file)} is not a valid ${alg} PEM SPKI public key`, { cause });
  }
  if (key.type !== 'public') throw new Error(`${configKey}: ${JSON.stringify(file)} must hold a public key`);
  return key;
}

function jwkFits(jwk: JWK, alg: 'RS256' | 'ES256'): boolean {
  if (jwk.use !== undefined && jwk.use !== 'sig') return false;
  if (jwk.alg !== undefined && jwk.alg !== alg) return false;
  return alg === 'RS256' ? jwk.kty === 'RSA' : jwk.kty === 'EC' && jwk.crv === 'P-256';
}

async function loadJwks(file: string, alg: 'RS256' | 'ES256'): Promise<JWTVerifyGetKey> {
  const configKey = 'admin.jwt.jwksFile';
  const text = await readKeyFile(configKey, file);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (cause) {
    throw new Error(`${configKey}: ${JSON.stringify(file)} is not valid JSON`, { cause });
  }
  const keys = (json as { keys?: unknown } | null)?.keys;
  if (typeof json !== 'object' || json === null || !Array.isArray(keys)) {
    throw new Error(`${configKey}: ${JSON.stringify(file)} is not a JWKS (expected {"keys": [...]})`);
  }
  // Import every key that could be used for `alg` now, so a broken file fails at startup, not per request.
  let usable = 0;
  for (const [i, raw] of keys.entries()) {
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
      throw new Error(`${configKey}: ${JSON.stringify(file)} keys[${i}] is not a JSON object`);
    }
    const jwk = raw as JWK;
    if ('d' in jwk || 'k' in jwk) throw new Error(`${configKey}: ${JSON.stringify(file)} keys[${i}] is not a public key`);
    if (!jwkFits(jwk, alg)) continue;
    try {
      await importJWK(jwk, alg);
    } catch (cause) {
      throw new Error(`${configKey}: ${JSON.stringify(file)} keys[${i}] is not a valid ${alg} public key`, { cause });
    }
    usable++;
  }
  if (usable === 0) throw new Error(`${configKey}: ${JSON.stringify(file)} contains no ${alg} signing key`);
  try {
    return createLocalJWKSet(json as JSONWebKeySet);
  } catch (cause) {
    throw new Error(`${configKey}: ${JSON.stringify(file)} is not a valid JWKS`, { cause });
  }
}
