/**
 * An incremental decoder for chunked request bodies (RFC 9112 §7.1), strict like the
 * head parser: hex sizes of at most 16 digits (and at most 2^53 - 1), extensions only as
 * `;token[=token|quoted-string]` with no whitespace, CRLF everywhere, trailers checked
 * with the header-line rules and then dropped (the data plane re-frames bodies, it never
 * forwards trailers). A trailer named Content-Length or Transfer-Encoding is an error, as
 * in Node's parser (RFC 9110 6.5.1: framing fields cannot be trailers; the differential
 * fuzz found we took them). Hand-written, byte-at-a-time state machine: a chunk boundary may
 * fall anywhere between two reads. No allocation per call.
 *
 *   const d = new ChunkedDecoder();
 *   let p = start, ev;
 *   while ((ev = d.step(buf, p, end)) === CHUNK_DATA) { use(buf, d.dataStart, d.dataEnd); p = d.pos; }
 *   // CHUNK_NEED_MORE: all of [p, end) is consumed; CHUNK_END: the body ended at d.pos;
 *   // CHUNK_ERROR: d.reason says why.
 */
import { CR, HEX, LF, TOKEN, VALUE } from './bytes.js';

/** step(): every byte up to `end` is consumed, the body goes on. */
export const CHUNK_NEED_MORE = 0;
/** step(): body bytes are at [dataStart, dataEnd); go on from `pos`. */
export const CHUNK_DATA = 1;
/** step(): the body (last chunk and trailers) ended; the next request starts at `pos`. */
export const CHUNK_END = 2;
/** step(): the body is malformed (`reason`); the connection must close. */
export const CHUNK_ERROR = 3;

/** Most hex digits of a chunk size. */
export const MAX_SIZE_DIGITS = 16;
/** Most bytes of a size line's extensions plus trailers, and most trailer lines. */
export const MAX_EXTENSION_BYTES = 4096;
export const MAX_TRAILER_BYTES = 16384;
export const MAX_TRAILER_LINES = 100;

const enum S {
  Size, SizeMore, ExtName0, ExtName, ExtVal0, ExtToken, ExtQuoted, ExtQuotedPair, ExtAfterQuote,
  SizeLF, Data, DataCR, DataLF, TrailerStart, TrailerName, TrailerValue, TrailerLF, FinalLF, Done, Failed,
}

/** Framing header names, lower-case: refused as trailers. */
const CONTENT_LENGTH = Buffer.from('content-length', 'latin1');
const TRANSFER_ENCODING = Buffer.from('transfer-encoding', 'latin1');
const MAY_BE_CL = 1;
const MAY_BE_TE = 2;

/** Bytes allowed in a quoted-string's qdtext and after a backslash (VALUE minus `"` and `\`). */
const QDTEXT = VALUE.slice();
QDTEXT[0x22] = 0;
QDTEXT[0x5c] = 0;

/** One chunked body's decoding state; make one per request body. */
export class ChunkedDecoder {
  /** Where to resume after CHUNK_DATA or CHUNK_END. */
  pos = 0;
  dataStart = 0;
  dataEnd = 0;
  /** Why CHUNK_ERROR was returned. */
  reason = '';
  /** Body bytes so far. */
  bodyBytes = 0;
  private state = S.Size;
  private size = 0;
  private digits = 0;
  private extBytes = 0;
  private trailerBytes = 0;
  private trailerLines = 0;
  /** The current trailer name: its length so far, and which framing names it may still be (MAY_BE_*). */
  private nameLength = 0;
  private framingName = 0;

  private error(reason: string): number {
    this.state = S.Failed;
    this.reason = reason;
    return CHUNK_ERROR;
  }

  /** Matches one byte of a trailer name against the framing names (case-insensitively). */
  private trailerNameByte(c: number): void {
    const lower = c >= 0x41 && c <= 0x5a ? c | 0x20 : c;
    if (this.framingName & MAY_BE_CL && CONTENT_LENGTH[this.nameLength] !== lower) this.framingName &= ~MAY_BE_CL;
    if (this.framingName & MAY_BE_TE && TRANSFER_ENCODING[this.nameLength] !== lower) this.framingName &= ~MAY_BE_TE;
    this.nameLength++;
  }

  private isFramingName(): boolean {
    return (this.framingName & MAY_BE_CL && this.nameLength === CONTENT_LENGTH.length) || (this.framingName & MAY_BE_TE && this.nameLength === TRANSFER_ENCODING.length) ? true : false;
  }

  /** Decodes from buf[start, end) onward; see the module comment for the protocol. */
  step(buf: Buffer, start: number, end: number): number {
    let p = start;
    while (p < end) {
      const c = buf[p]!;
      switch (this.state) {
        case S.Size:
        case S.SizeMore: {
          const h = HEX[c]!;
          if (h >= 0) {
            if (++this.digits > MAX_SIZE_DIGITS) return this.error('chunk size too long');
            this.size = this.size * 16 + h;
            if (this.size > Number.MAX_SAFE_INTEGER) return this.error('chunk size too large');
            this.state = S.SizeMore;
            break;
          }
          if (this.state === S.Size) return this.error('malformed chunk size');
          if (c === 0x3b) this.state = S.ExtName0;
          else if (c === CR) this.state = S.SizeLF;
          else return this.error('malformed chunk size');
          break;
        }
        case S.ExtName0:
          if (!TOKEN[c]) return this.error('malformed chunk extension');
          this.state = S.ExtName;
          break;
        case S.ExtName:
          if (c === 0x3d) this.state = S.ExtVal0;
          else if (c === 0x3b) this.state = S.ExtName0;
          else if (c === CR) this.state = S.SizeLF;
          else if (!TOKEN[c]) return this.error('malformed chunk extension');
          break;
        case S.ExtVal0:
          if (c === 0x22) this.state = S.ExtQuoted;
          else if (TOKEN[c]) this.state = S.ExtToken;
          else return this.error('malformed chunk extension');
          break;
        case S.ExtToken:
          if (c === 0x3b) this.state = S.ExtName0;
          else if (c === CR) this.state = S.SizeLF;
          else if (!TOKEN[c]) return this.error('malformed chunk extension');
          break;
        case S.ExtQuoted:
          if (c === 0x22) this.state = S.ExtAfterQuote;
          else if (c === 0x5c) this.state = S.ExtQuotedPair;
          else if (!QDTEXT[c]) return this.error('malformed chunk extension');
          break;
        case S.ExtQuotedPair:
          if (!VALUE[c]) return this.error('malformed chunk extension');
          this.state = S.ExtQuoted;
          break;
        case S.ExtAfterQuote:
          if (c === 0x3b) this.state = S.ExtName0;
          else if (c === CR) this.state = S.SizeLF;
          else return this.error('malformed chunk extension');
          break;
        case S.SizeLF:
          if (c !== LF) return this.error('bare CR after chunk size');
          this.digits = 0;
          this.state = this.size === 0 ? S.TrailerStart : S.Data;
          break;
        case S.Data: {
          const n = Math.min(this.size, end - p);
          this.size -= n;
          this.bodyBytes += n;
          if (this.size === 0) this.state = S.DataCR;
          this.dataStart = p;
          this.dataEnd = p + n;
          this.pos = p + n;
          return CHUNK_DATA;
        }
        case S.DataCR:
          if (c !== CR) return this.error('chunk data not followed by CRLF');
          this.state = S.DataLF;
          break;
        case S.DataLF:
          if (c !== LF) return this.error('chunk data not followed by CRLF');
          this.state = S.Size;
          break;
        case S.TrailerStart:
          if (c === CR) this.state = S.FinalLF;
          else if (!TOKEN[c]) return this.error('malformed trailer');
          else if (++this.trailerLines > MAX_TRAILER_LINES) return this.error('too many trailers');
          else {
            this.state = S.TrailerName;
            this.nameLength = 0;
            this.framingName = MAY_BE_CL | MAY_BE_TE;
            this.trailerNameByte(c);
          }
          break;
        case S.TrailerName:
          if (c === 0x3a) {
            if (this.isFramingName()) return this.error('Content-Length or Transfer-Encoding as a trailer');
            this.state = S.TrailerValue;
          } else if (!TOKEN[c]) return this.error('malformed trailer');
          else this.trailerNameByte(c);
          break;
        case S.TrailerValue:
          if (c === CR) this.state = S.TrailerLF;
          else if (!VALUE[c]) return this.error('malformed trailer');
          break;
        case S.TrailerLF:
          if (c !== LF) return this.error('bare CR in trailer');
          this.state = S.TrailerStart;
          break;
        case S.FinalLF:
          if (c !== LF) return this.error('bare CR after last chunk');
          this.state = S.Done;
          this.pos = p + 1;
          return CHUNK_END;
        case S.Done:
          this.pos = p;
          return CHUNK_END;
        default:
          return CHUNK_ERROR;
      }
      if (this.state >= S.ExtName0 && this.state <= S.ExtAfterQuote && ++this.extBytes > MAX_EXTENSION_BYTES) {
        return this.error('chunk extensions too long');
      }
      if (this.state >= S.TrailerStart && this.state <= S.FinalLF && ++this.trailerBytes > MAX_TRAILER_BYTES) {
        return this.error('trailers too large');
      }
      p++;
    }
    this.pos = p;
    if (this.state === S.Done) return CHUNK_END;
    return this.state === S.Failed ? CHUNK_ERROR : CHUNK_NEED_MORE;
  }
}
