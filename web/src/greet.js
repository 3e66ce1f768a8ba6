// The greet codec, written from greet-protocol.md and greet-protocol-v2.md
// (the wire contract): frames are uvarint(len) || body, bodies are postcard.
// No dependencies: multiaddrs stay bytes here (the caller renders them).
//
//   1.0.0  request  GreetRequest { message: String }
//          response Result<GreetResponse { message, observed_addr }, RemoteError { code: u16, message }>
//   2.0.0  the same, each prefixed with a u64 id (0: a stream-level error)

/** Largest body a frame may declare (greet-protocol.md, MAX_FRAME_LEN). */
export const MAX_FRAME_LEN = 65536

export const PROTOCOL_V1 = '/p2p-node/greet/1.0.0'
export const PROTOCOL_V2 = '/p2p-node/greet/2.0.0'

const utf8 = new TextEncoder()
const fromUtf8 = new TextDecoder('utf-8', { fatal: true })

/** A malformed body or frame; `code` is what a responder would answer (400/413). */
export class DecodeError extends Error {
  constructor (message, code = 400) {
    super(message)
    this.code = code
  }
}

/** Unsigned LEB128 of a non-negative integer (Number up to 2^53, or BigInt). */
export function encodeUvarint (value) {
  let n = BigInt(value)
  if (n < 0n) throw new RangeError('negative varint')
  const out = []
  do {
    let byte = Number(n & 0x7fn)
    n >>= 7n
    if (n > 0n) byte |= 0x80
    out.push(byte)
  } while (n > 0n)
  return Uint8Array.from(out)
}

/**
 * Reads a uvarint at `offset`: { value (BigInt), next } or null if the bytes
 * end first. At most 10 bytes, the tenth holding bit 63 only.
 */
export function decodeUvarint (bytes, offset = 0) {
  let value = 0n
  for (let i = 0; i < 10; i++) {
    if (offset + i >= bytes.length) return null
    const byte = bytes[offset + i]
    if (i === 9 && byte > 0x01) throw new DecodeError('varint overflows 64 bits')
    value |= BigInt(byte & 0x7f) << BigInt(7 * i)
    if ((byte & 0x80) === 0) return { value, next: offset + i + 1 }
  }
  throw new DecodeError('varint longer than 10 bytes')
}

function concat (parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
  let at = 0
  for (const p of parts) { out.set(p, at); at += p.length }
  return out
}

/** A frame: uvarint(body length) || body. */
export function frame (body) {
  return concat([encodeUvarint(body.length), body])
}

// ---- postcard, as much as greet needs ----

function encodeBytes (bytes) { return concat([encodeUvarint(bytes.length), bytes]) }
function encodeString (s) { return encodeBytes(utf8.encode(s)) }

/** A cursor over one body: every read checks the bounds. */
class Reader {
  constructor (bytes) { this.bytes = bytes; this.at = 0 }
  varint (max) {
    const r = decodeUvarint(this.bytes, this.at)
    if (r == null) throw new DecodeError('body ends inside a varint')
    if (r.value > max) throw new DecodeError(`varint ${r.value} out of range`)
    this.at = r.next
    return r.value
  }
  bytesField () {
    const len = Number(this.varint(BigInt(this.bytes.length)))
    if (this.at + len > this.bytes.length) throw new DecodeError('body ends inside a field')
    const out = this.bytes.subarray(this.at, this.at + len)
    this.at += len
    return out
  }
  string () {
    try { return fromUtf8.decode(this.bytesField()) } catch (err) {
      if (err instanceof DecodeError) throw err
      throw new DecodeError('string is not UTF-8')
    }
  }
  end () { if (this.at !== this.bytes.length) throw new DecodeError('trailing bytes') }
}

const U16 = 0xffffn
const U64 = 0xffffffffffffffffn

function readResult (r) {
  const variant = r.varint(1n)
  if (variant === 0n) {
    const message = r.string()
    const observedAddr = r.bytesField()
    return { ok: { message, observedAddr } }
  }
  const code = Number(r.varint(U16))
  return { err: { code, message: r.string() } }
}

function encodeResult (result) {
  if (result.ok != null) {
    return concat([Uint8Array.of(0), encodeString(result.ok.message), encodeBytes(result.ok.observedAddr)])
  }
  return concat([Uint8Array.of(1), encodeUvarint(result.err.code), encodeString(result.err.message)])
}

/** 1.0.0 request body: GreetRequest { message }. */
export function encodeRequest (message) { return encodeString(message) }

/** 1.0.0 request body, decoded (what a responder does). */
export function decodeRequest (body) {
  const r = new Reader(body)
  const message = r.string()
  r.end()
  return message
}

/** 1.0.0 response body: { ok: { message, observedAddr } } or { err: { code, message } }. */
export function decodeResponse (body) {
  const r = new Reader(body)
  const result = readResult(r)
  r.end()
  return result
}

/** 1.0.0 response body from a result (for tests and vectors). */
export function encodeResponse (result) { return encodeResult(result) }

/** 2.0.0 request body: (u64 id, GreetRequest). */
export function encodeRequestV2 (id, message) { return concat([encodeUvarint(id), encodeString(message)]) }

/** 2.0.0 response body: { id (BigInt), result }. */
export function decodeResponseV2 (body) {
  const r = new Reader(body)
  const id = r.varint(U64)
  const result = readResult(r)
  r.end()
  return { id, result }
}

/** 2.0.0 response body (for tests and vectors). */
export function encodeResponseV2 (id, result) { return concat([encodeUvarint(id), encodeResult(result)]) }

/**
 * Splits a byte stream into frame bodies: push() chunks as they arrive,
 * next() the next whole body or null. A declared length over
 * MAX_FRAME_LEN throws (413) before any of the body is kept.
 */
export class FrameDecoder {
  constructor (max = MAX_FRAME_LEN) { this.max = max; this.buf = new Uint8Array(0) }
  push (chunk) { this.buf = this.buf.length === 0 ? chunk.slice() : concat([this.buf, chunk]) }
  next () {
    const head = decodeUvarint(this.buf, 0)
    if (head == null) return null
    if (head.value > BigInt(this.max)) throw new DecodeError(`declared length ${head.value} > ${this.max}`, 413)
    const len = Number(head.value)
    if (this.buf.length < head.next + len) return null
    const body = this.buf.slice(head.next, head.next + len)
    this.buf = this.buf.slice(head.next + len)
    return body
  }
  get pending () { return this.buf.length }
}

export const hex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('')
export const fromHex = (s) => Uint8Array.from(s.match(/../g) ?? [], (h) => parseInt(h, 16))
