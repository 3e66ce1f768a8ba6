// The JavaScript greet codec against the golden vectors of
// greet-protocol.md and greet-protocol-v2.md, byte for byte.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { multiaddr } from '@multiformats/multiaddr'
import {
  DecodeError, FrameDecoder, decodeRequest, decodeResponse, decodeResponseV2, encodeRequest,
  encodeRequestV2, encodeResponse, encodeResponseV2, frame, fromHex, hex
} from '../src/greet.js'

const quic = multiaddr('/ip4/10.0.0.2/udp/4001/quic-v1').bytes
const tcp = multiaddr('/ip4/10.0.0.2/tcp/54321').bytes

test('1.0.0 golden vectors', () => {
  assert.equal(hex(encodeRequest('hello ✓')), '0968656c6c6f20e29c93')
  assert.equal(hex(encodeRequest('x'.repeat(200))), 'c801' + '78'.repeat(200))
  const vectors = [
    [{ ok: { message: 'hi', observedAddr: quic } }, '000268690b040a00000291020fa1cd03'],
    [{ ok: { message: '', observedAddr: tcp } }, '000008040a00000206d431'],
    [{ err: { code: 413, message: 'too big' } }, '019d0307746f6f20626967'],
    [{ err: { code: 65535, message: 'm' } }, '01ffff03016d']
  ]
  for (const [value, body] of vectors) {
    assert.equal(hex(encodeResponse(value)), body)
    assert.deepEqual(decodeResponse(fromHex(body)), value)
  }
  assert.equal(multiaddr(decodeResponse(fromHex(vectors[0][1])).ok.observedAddr).toString(), '/ip4/10.0.0.2/udp/4001/quic-v1')
  assert.equal(hex(frame(fromHex('019d0307746f6f20626967'))), '0b019d0307746f6f20626967')
  assert.equal(decodeRequest(fromHex('0968656c6c6f20e29c93')), 'hello ✓')
})

test('2.0.0 golden vectors', () => {
  assert.equal(hex(encodeRequestV2(1, 'hello ✓')), '010968656c6c6f20e29c93')
  const vectors = [
    [2n, { ok: { message: 'hi', observedAddr: quic } }, '02000268690b040a00000291020fa1cd03'],
    [300n, { err: { code: 429, message: 'slow down' } }, 'ac0201ad0309736c6f7720646f776e'],
    [0n, { err: { code: 400, message: 'bad frame' } }, '0001900309626164206672616d65']
  ]
  for (const [id, result, body] of vectors) {
    assert.equal(hex(encodeResponseV2(id, result)), body)
    assert.deepEqual(decodeResponseV2(fromHex(body)), { id, result })
  }
})

test('hostile bodies are 400, oversized frames 413 before the body', () => {
  for (const body of ['ffffff', '02c328', '017800', '', '0a6869']) {
    assert.throws(() => decodeRequest(fromHex(body)), (e) => e instanceof DecodeError && e.code === 400, body)
  }
  assert.throws(() => decodeResponse(fromHex('02')), DecodeError, 'variant 2')
  assert.throws(() => decodeResponse(fromHex('01808004')), DecodeError, 'code over u16')
  const frames = new FrameDecoder()
  frames.push(fromHex('818004')) // declares 65,537 bytes
  assert.throws(() => frames.next(), (e) => e.code === 413)
  const max = new FrameDecoder()
  max.push(fromHex('ffffffffffffffffff01'))
  assert.throws(() => max.next(), (e) => e.code === 413)
  const long = new FrameDecoder()
  long.push(fromHex('8080808080808080808001'))
  assert.throws(() => long.next(), (e) => e.code === 400)
})

test('frames split anywhere are reassembled', () => {
  const bytes = new Uint8Array([...frame(encodeRequest('a')), ...frame(encodeRequest('x'.repeat(200)))])
  const frames = new FrameDecoder()
  const bodies = []
  for (const b of bytes) {
    frames.push(Uint8Array.of(b))
    for (let body; (body = frames.next()) != null;) bodies.push(decodeRequest(body))
  }
  assert.deepEqual(bodies, ['a', 'x'.repeat(200)])
  assert.equal(frames.pending, 0)
})
