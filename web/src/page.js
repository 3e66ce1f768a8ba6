// The browser page: js-libp2p 3.x over WebSocket (Noise, Yamux, identify,
// ping) visits the p2p-node named by `?addr=/ip4/<ip>/tcp/<port>/ws/p2p/<id>`
// (or a `/webrtc-direct/certhash/...` address, with the node's `webrtc` feature)
// and shows what it answered. Other parameters: `count=N` times N greetings
// each way (rtt p50), `report=<path>` POSTs the JSON summary to that path
// of the page's own origin (how scripts/browser-netns.sh hears it).
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { identify } from '@libp2p/identify'
import { ping } from '@libp2p/ping'
import { webRTCDirect } from '@libp2p/webrtc'
import { webSockets } from '@libp2p/websockets'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'
import { serveGreet, visit } from './client.js'

const params = new URLSearchParams(location.search)
const out = document.getElementById('log')
const summaryEl = document.getElementById('summary')
const statusEl = document.getElementById('status')

const lines = []
function log (line) {
  lines.push(line)
  const li = document.createElement('li')
  li.textContent = line
  out.append(li)
}

/** An error as text (js-libp2p can reject with a bare WebSocket `Event`). */
function describe (err) {
  if (err instanceof AggregateError) return `${err.name}: ${err.message} [${err.errors.map(describe).join('; ')}]`
  if (err instanceof Error) return `${err.name}: ${err.message}${err.cause != null ? ` (cause: ${describe(err.cause)})` : ''}`
  if (err?.type != null) return `${err.constructor?.name ?? 'Event'} ${err.type}`
  return String(err)
}

function render (bytes) {
  try { return multiaddr(bytes).toString() } catch { return `(${bytes.length} bytes)` }
}

async function report (summary) {
  summaryEl.textContent = JSON.stringify(summary, null, 2)
  statusEl.textContent = summary.pass ? 'PASS' : 'FAIL'
  statusEl.className = summary.pass ? 'pass' : 'fail'
  document.title = `p2p-node from a browser: ${statusEl.textContent}`
  const path = params.get('report')
  if (path != null && path.startsWith('/')) {
    await fetch(path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(summary) })
      .catch((err) => log(`report failed: ${err.message}`))
  }
}

async function main () {
  const addr = params.get('addr')
  if (addr == null) {
    statusEl.textContent = 'give the node\'s address: ?addr=/ip4/<ip>/tcp/<port>/ws/p2p/<peer-id>'
    return
  }
  const node = await createLibp2p({
    // WebRTC-direct for nodes built with the `webrtc` feature (`/webrtc-direct/certhash/...`).
    transports: [webSockets(), webRTCDirect()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    services: { identify: identify(), ping: ping() },
    // In a browser js-libp2p's default gater refuses plain `/ws` and
    // private addresses; a node on a LAN or in a namespace is both.
    connectionGater: { denyDialMultiaddr: async () => false }
  })
  log(`we are ${node.peerId}`)
  const greeted = []
  await serveGreet(node, 'hello from a browser', (peer, message) => {
    greeted.push(peer)
    log(`greeted by ${peer}: "${message}"`)
  })
  const count = Number(params.get('count') ?? 0)
  let summary
  try {
    summary = await visit(node, multiaddr(addr), { count, log, render })
  } catch (err) {
    log(`failed: ${err?.stack ?? describe(err)}`)
    summary = { self: node.peerId.toString(), addr, pass: false, error: describe(err), log: lines }
  }
  // The node greets every peer that serves greet; wait (a little) for its first.
  for (let i = 0; i < 50 && greeted.length === 0 && summary.pass; i++) await new Promise((resolve) => setTimeout(resolve, 100))
  summary.greeted_by = greeted
  summary.user_agent = navigator.userAgent
  await report(summary)
}

main().catch((err) => {
  log(`failed: ${err?.stack ?? describe(err)}`)
  report({ pass: false, error: describe(err) })
})
