/**
 * The admin API's one error table. Every error body has the form
 * {"success": false, "error": CODE, "error_description": "...", "details": [{path, message}]}.
 */
export const ADMIN_ERRORS = {
  BAD_REQUEST: 400,
  UNAUTHORIZED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  METHOD_NOT_ALLOWED: 405,
  CONFLICT: 409,
  PRECONDITION_FAILED: 412,
  PAYLOAD_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  INTERNAL_ERROR: 500,
  SERVICE_UNAVAILABLE: 503,
} as const;

export type AdminErrorCode = keyof typeof ADMIN_ERRORS;

export interface ErrorDetail {
  readonly path: string;
  readonly message: string;
}

export class AdminError extends Error {
  readonly status: number;
  constructor(
    readonly code: AdminErrorCode,
    message: string,
    readonly details: readonly ErrorDetail[] = [],
    readonly headers: Readonly<Record<string, string>> = {},
  ) {
    super(message);
    this.status = ADMIN_ERRORS[code];
  }

  toBody(): string {
    return JSON.stringify({ success: false, error: this.code, error_description: this.message, details: this.details });
  }
}
