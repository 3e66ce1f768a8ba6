// Greet over js-libp2p 3.x streams, and the whole visit the page makes to a
// node: connect, identify, ping, greet (1.0.0, 2.0.0), a hostile frame,
// `count` timed greetings. Shared by the page (src/page.js, over WebSocket)
// and the Node.js peer (node-peer.mjs, over TCP), so their figures compare.
import {
  FrameDecoder, PROTOCOL_V1, PROTOCOL_V2, decodeRequest, decodeResponse, decodeResponseV2,
  encodeRequest, encodeRequestV2, encodeResponse, frame
} from './greet.js'

const now = () => performance.now()
const bytesOf = (chunk) => (chunk instanceof Uint8Array ? chunk : chunk.subarray())

/** Sends `bytes` on `stream`, waiting for the send buffer to drain if full. */
async function send (stream, bytes) {
  if (!stream.send(bytes)) await stream.onDrain()
}

/**
 * Closes our write half without waiting for the peer to acknowledge it:
 * over WebRTC, js-libp2p waits up to 10 s for a FIN_ACK that rust-libp2p's
 * libp2p-webrtc 0.10.0-alpha never sends (rust-libp2p issue #4600), then
 * rejects; the FIN itself has gone out, and the answer comes anyway.
 */
function closeWrite (stream) {
  stream.close().catch(() => {})
}

/** Reads one frame body off `stream` (null if it ends first). */
async function readFrame (stream, frames = new FrameDecoder()) {
  for await (const chunk of stream) {
    frames.push(bytesOf(chunk))
    const body = frames.next()
    if (body != null) return body
  }
  return null
}

/**
 * Greet 1.0.0: a stream per request; writes `bytes` (a whole frame, or
 * anything hostile), closes its write half, reads the one answer.
 */
export async function greetRaw (connection, bytes) {
  const stream = await connection.newStream(PROTOCOL_V1)
  await send(stream, bytes)
  closeWrite(stream)
  const body = await readFrame(stream)
  if (body == null) throw new Error('the stream ended without an answer')
  return decodeResponse(body)
}

/** Greet 1.0.0 with `message`: { ok } or { err }. */
export function greetV1 (connection, message) {
  return greetRaw(connection, frame(encodeRequest(message)))
}

/** Greet 2.0.0: one long-lived stream, requests matched to answers by id. */
export class Pipelined {
  static async open (connection) {
    return new Pipelined(await connection.newStream(PROTOCOL_V2))
  }

  constructor (stream) {
    this.stream = stream
    this.nextId = 1n
    this.pending = new Map()
    this.closed = this.#read()
  }

  async #read () {
    const frames = new FrameDecoder()
    let failure = new Error('the 2.0.0 stream ended')
    try {
      for await (const chunk of this.stream) {
        frames.push(bytesOf(chunk))
        for (let body; (body = frames.next()) != null;) {
          const { id, result } = decodeResponseV2(body)
          if (id === 0n) { failure = new Error(`stream error ${result.err?.code}: ${result.err?.message}`); continue }
          this.pending.get(id)?.resolve(result)
          this.pending.delete(id)
        }
      }
    } catch (err) {
      failure = err
    }
    for (const { reject } of this.pending.values()) reject(failure)
    this.pending.clear()
  }

  /** Sends a greeting; resolves with its { ok } or { err }. */
  async greet (message) {
    const id = this.nextId++
    const answer = new Promise((resolve, reject) => this.pending.set(id, { resolve, reject }))
    await send(this.stream, frame(encodeRequestV2(id, message)))
    return answer
  }

  async close () {
    closeWrite(this.stream)
    await this.closed
  }
}

/**
 * Serves greet 1.0.0 on `node` (so the node we visit can greet us back and
 * print GREETED for us): answers with `message` and the address we see the
 * caller at.
 */
export async function serveGreet (node, message, onGreeted = () => {}) {
  await node.handle(PROTOCOL_V1, async (stream, connection) => {
    try {
      const body = await readFrame(stream)
      const theirs = decodeRequest(body)
      const observed = connection.remoteAddr.decapsulateCode(421) // without /p2p/<id>
      await send(stream, frame(encodeResponse({ ok: { message: `${message} (you said: ${theirs})`, observedAddr: observed.bytes } })))
      closeWrite(stream)
      onGreeted(connection.remotePeer.toString(), theirs)
    } catch (err) {
      stream.abort(err)
    }
  })
}

function percentile (sorted, p) {
  if (sorted.length === 0) return null
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]
}

/** `count` sequential greetings through `greet`: rtt p50/p90/max in ms. */
async function timed (count, greet) {
  const rtts = []
  for (let i = 0; i < count; i++) {
    const t = now()
    const answer = await greet(`rtt ${i}`)
    if (answer.ok == null) throw new Error(`greeting ${i} answered ${answer.err.code} ${answer.err.message}`)
    rtts.push(now() - t)
  }
  rtts.sort((a, b) => a - b)
  const round = (x) => (x == null ? null : Math.round(x * 100) / 100)
  return { count, p50_ms: round(percentile(rtts, 50)), p90_ms: round(percentile(rtts, 90)), max_ms: round(rtts.at(-1)) }
}

/**
 * The visit: dial `addr`, identify, ping, greet over 1.0.0 and (if the node
 * lists it) 2.0.0, one hostile frame (declared length over the limit: 413
 * expected), then `count` timed greetings each way. `log(line)` narrates;
 * `render(observedAddrBytes)` turns an address into text. Returns the
 * summary; `summary.pass` says whether every step got the answer expected.
 */
export async function visit (node, addr, { count = 0, log = () => {}, render = String } = {}) {
  const summary = { self: node.peerId.toString(), addr: addr.toString(), steps: {}, pass: false }
  const step = (name, value) => { summary.steps[name] = value; log(`${name}: ${JSON.stringify(value)}`) }
  // js-libp2p identifies every new connection itself (a second identify
  // on it is refused): listen for its result before dialing.
  const identified = new Promise((resolve) => {
    const listener = (evt) => {
      if (evt.detail.connection !== connection) return
      node.removeEventListener('peer:identify', listener)
      resolve(evt.detail)
    }
    node.addEventListener('peer:identify', listener)
  })
  const t0 = now()
  const connection = await node.dial(addr)
  const connectMs = now() - t0
  summary.remote = connection.remotePeer.toString()
  step('connect', { ms: round2(connectMs), remote: summary.remote, via: connection.remoteAddr.toString() })

  const id = await withTimeout(identified, 10000, 'identify')
  step('identify', { agent: id.agentVersion, protocols: id.protocols })

  const pings = []
  for (let i = 0; i < 3; i++) pings.push(round2(await node.services.ping.ping(connection.remoteAddr)))
  step('ping', { rtt_ms: pings })

  let t = now()
  const first = await greetV1(connection, 'hello from js-libp2p')
  const firstMs = now() - t
  step('greet 1.0.0', { ms: round2(firstMs), answer: show(first, render) })
  summary.connect_and_first_greeting_ms = round2(connectMs + firstMs)

  let pipelined = null
  if (id.protocols.includes(PROTOCOL_V2)) {
    pipelined = await Pipelined.open(connection)
    t = now()
    const answer = await pipelined.greet('hello over 2.0.0')
    step('greet 2.0.0', { ms: round2(now() - t), answer: show(answer, render) })
  } else {
    step('greet 2.0.0', { skipped: 'not listed by identify' })
  }

  // A frame declaring 65,537 bytes, one more than MAX_FRAME_LEN.
  const hostile = await greetRaw(connection, Uint8Array.from([0x81, 0x80, 0x04, ...new Uint8Array(64)]))
  step('hostile frame', { answer: show(hostile, render) })
  const after = await greetV1(connection, 'still there?')
  step('greet after the hostile frame', { answer: show(after, render) })

  if (count > 0) {
    step('rtt 1.0.0', await timed(count, (m) => greetV1(connection, m)))
    if (pipelined != null) step('rtt 2.0.0', await timed(count, (m) => pipelined.greet(m)))
  }
  if (pipelined != null) await pipelined.close()

  summary.pass = first.ok != null && after.ok != null && hostile.err?.code === 413 &&
    (pipelined == null || summary.steps['greet 2.0.0'].answer?.ok != null)
  return summary
}

function withTimeout (promise, ms, what) {
  let timer
  const timeout = new Promise((resolve, reject) => { timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms) })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

function round2 (x) { return Math.round(x * 100) / 100 }

function show (answer, render) {
  if (answer.ok != null) return { ok: { message: answer.ok.message, observed: render(answer.ok.observedAddr) } }
  return { err: answer.err }
}
