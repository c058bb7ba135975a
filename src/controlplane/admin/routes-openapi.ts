/**
 * GET /apiops/openapi.json — the admin API's OpenAPI 3.1 document, readable by any authenticated
 * role. `all` yields the final route list (this route included); the document is built on first
 * request, once that list is complete, and kept: routes do not change while the server runs.
 */
import { buildOpenApi, OPENAPI_PATH } from './openapi.js';
import type { Route } from './router.js';

export function openapiRoutes(all: () => readonly Route[]): Route[] {
  let doc: object | null = null;
  return [
    {
      method: 'GET',
      path: OPENAPI_PATH,
      write: false,
      handler: async () => {
        doc ??= buildOpenApi(all());
        return { body: doc };
      },
    },
  ];
}
