// The page's visit (src/client.js) from Node.js over TCP, for figures beside
// the browser's: js-libp2p 3.x with TCP, Noise, Yamux, identify and ping.
//
//   node web/node-peer.mjs /ip4/<ip>/tcp/<port>/p2p/<id> [count]
//
// Prints the narration to stderr and the JSON summary on stdout; exits 1
// unless every step got the answer expected.
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { identify } from '@libp2p/identify'
import { ping } from '@libp2p/ping'
import { tcp } from '@libp2p/tcp'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p } from 'libp2p'
import { serveGreet, visit } from './src/client.js'

// Node 20 has no Promise.withResolvers (ES2024, node >= 22), which parts of
// js-libp2p call; this is its specified behaviour (as in scripts/js).
Promise.withResolvers ??= function () {
  let resolve, reject
  const promise = new this((res, rej) => { resolve = res; reject = rej })
  return { promise, resolve, reject }
}

const [addr, count = '0'] = process.argv.slice(2)
if (addr == null) {
  process.stderr.write('usage: node node-peer.mjs <multiaddr>/p2p/<id> [count]\n')
  process.exit(2)
}
const node = await createLibp2p({
  transports: [tcp()],
  connectionEncrypters: [noise()],
  streamMuxers: [yamux()],
  services: { identify: identify(), ping: ping() }
})
await serveGreet(node, 'hello from node.js')
const render = (bytes) => { try { return multiaddr(bytes).toString() } catch { return `(${bytes.length} bytes)` } }
let summary
try {
  summary = await visit(node, multiaddr(addr), { count: Number(count), log: (l) => process.stderr.write(l + '\n'), render })
} catch (err) {
  summary = { pass: false, error: String(err?.stack ?? err) }
}
summary.runtime = `node ${process.version}`
process.stdout.write(JSON.stringify(summary) + '\n')
await node.stop()
process.exit(summary.pass ? 0 : 1)
