// Defender's error envelope: {"error":{"code","message","target"}}, target = a correlation id.

import { randomUUID } from 'node:crypto';

/** Thrown by route handlers; the server renders it with the documented envelope. */
export class MdeError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

export function errorBody(code: string, message: string): { error: { code: string; message: string; target: string } } {
  return { error: { code, message, target: randomUUID() } };
}

/** Default envelope for an injected failure of a given HTTP status. */
export function defaultErrorForStatus(status: number): { code: string; message: string } {
  switch (status) {
    case 400:
      return { code: 'BadRequest', message: 'Bad request.' };
    case 401:
      return { code: 'Unauthorized', message: 'Invalid or expired authorization header.' };
    case 403:
      return { code: 'Forbidden', message: 'The application does not have the required permissions.' };
    case 404:
      return { code: 'ResourceNotFound', message: 'The requested resource was not found.' };
    case 429:
      return { code: 'TooManyRequests', message: 'Reached the quota limit. Retry after the time indicated by the Retry-After header.' };
    case 500:
      return { code: 'InternalServerError', message: '' };
    case 502:
      return { code: 'BadGateway', message: 'Bad gateway.' };
    case 503:
      return { code: 'ServiceUnavailable', message: 'The service is temporarily unavailable.' };
    case 504:
      return { code: 'GatewayTimeout', message: 'Gateway timeout.' };
    default:
      return { code: 'Error', message: `Injected failure ${status}.` };
  }
}
