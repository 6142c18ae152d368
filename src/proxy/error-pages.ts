/**
 * Error pages: the small HTML pages the balancer answers with itself (400, 403, 404, 408,
 * 417, 431, 502, 503, 504). Built once at start-up (from `errorPages` files or the built-in text), so an
 * error costs no I/O. They never echo request input and never name a backend. Sent as raw
 * bytes on a bare socket (rawErrorResponse), or by the raw listener's FrontRequest.sendPage.
 */
import { readFileSync } from 'node:fs';

/** The statuses the balancer can answer with itself. */
export type ErrorStatus = 400 | 403 | 404 | 408 | 417 | 431 | 502 | 503 | 504;

const TEXT: Record<ErrorStatus, [string, string]> = {
  400: ['Bad Request', 'The request could not be understood by the load balancer.'],
  403: ['Forbidden', 'You are not allowed to open this address. If you think you should be, please contact your administrator.'],
  404: ['Not Found', 'There is nothing here.'],
  408: ['Request Timeout', 'The request did not arrive in time. Please try again.'],
  417: ['Expectation Failed', 'The request asks for an expectation (Expect header) this server does not support.'],
  431: ['Request Header Fields Too Large', 'The request headers are larger than this server accepts. Clearing this site\u2019s cookies may help.'],
  502: ['Bad Gateway', 'The application server could not be reached. Please try again in a moment.'],
  503: ['Service Unavailable', 'The application is temporarily unavailable, for example for maintenance. Please try again in a moment.'],
  504: ['Gateway Timeout', 'The application server did not answer in time. Please try again in a moment.'],
};

/** ErrorPage is one ready-to-send page. */
export interface ErrorPage {
  readonly status: ErrorStatus;
  readonly reason: string;
  readonly body: Buffer;
}

/** ErrorPages holds one page per status. */
export type ErrorPages = Readonly<Record<ErrorStatus, ErrorPage>>;

function builtIn(status: ErrorStatus): string {
  const [title, text] = TEXT[status];
  // The 503 page retries by itself: a user whose server is briefly away (failoverDelay,
  // maintenance) gets back to it without having to reload.
  const refresh = status === 503 ? '<meta http-equiv="refresh" content="10">\n' : '';
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${status} ${title}</title>
${refresh}<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{font-family:system-ui,sans-serif;max-width:36rem;margin:15vh auto;padding:0 1rem;color:#333}h1{font-size:1.4rem}</style>
</head><body><h1>${status} ${title}</h1><p>${text}</p></body></html>
`;
}

/**
 * loadErrorPages reads the configured page files (paths already absolute) once; a file
 * that cannot be read is an error at start-up, not at the moment a user needs the page.
 */
export function loadErrorPages(files: Partial<Record<string, string>>): ErrorPages {
  const pages = {} as Record<ErrorStatus, ErrorPage>;
  for (const key of Object.keys(TEXT)) {
    const status = Number(key) as ErrorStatus;
    const file = files[key];
    let body: Buffer;
    if (file !== undefined) {
      try {
        body = readFileSync(file);
      } catch (err) {
        throw new Error(`errorPages.${key}: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
      }
    } else {
      body = Buffer.from(builtIn(status));
    }
    pages[status] = { status, reason: TEXT[status][0], body };
  }
  return pages;
}

/**
 * missingPartitionKeyPage is the 400 answered in partition mode (partitionKey.required)
 * to a request that does not say which tenant it belongs to.
 */
export function missingPartitionKeyPage(): ErrorPage {
  const body = builtIn(400).replace(TEXT[400][1], 'This address does not say which organisation or tenant the request is for. Please use the address you were given.');
  return { status: 400, reason: TEXT[400][0], body: Buffer.from(body) };
}

/** rawErrorResponse renders a page as raw HTTP/1.1 bytes for a socket without a response object. */
export function rawErrorResponse(page: ErrorPage): Buffer {
  const retry = page.status === 503 ? 'retry-after: 10\r\n' : '';
  const head = `HTTP/1.1 ${page.status} ${page.reason}\r\ncontent-type: text/html; charset=utf-8\r\ncontent-length: ${page.body.length}\r\ncache-control: no-store\r\n${retry}connection: close\r\n\r\n`;
  return Buffer.concat([Buffer.from(head, 'latin1'), page.body]);
}
