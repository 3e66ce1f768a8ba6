// A stock js-libp2p node for scripts/js-libp2p-netns.sh: TCP, Noise, Yamux,
// identify and mDNS, every module with its default configuration except the
// mDNS query interval (and, with `ping` as third argument, @libp2p/ping
// too: js-libp2p's connection monitor pings every connection every 10 s and
// aborts it on failure, and a rust-libp2p peer stops answering pings on a
// connection once it learns the other side does not serve ping). It never
// dials anyone itself (js-libp2p has no autodialer since 2.0), so a
// connection means the other side dialed it.
//
//   node mdns-peer.mjs <listen multiaddr> [mDNS interval ms] [ping]
//
// Prints, one per line: JS_PEER <id>, JS_LISTEN <multiaddr>,
// JS_DISCOVERED <id> <multiaddrs...>, JS_CONNECTED <id>, JS_DISCONNECTED <id>,
// JS_IDENTIFIED <id> <agent> <protocols...>.
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { identify } from '@libp2p/identify'
import { mdns } from '@libp2p/mdns'
import { ping } from '@libp2p/ping'
import { tcp } from '@libp2p/tcp'
import { createLibp2p } from 'libp2p'

// Node 20 has no Promise.withResolvers (ES2024, node >= 22), which it-queue
// (under libp2p's peer store) calls even though no package here declares
// node >= 22; this is its specified behaviour, nothing more.
Promise.withResolvers ??= function () {
  let resolve, reject
  const promise = new this((res, rej) => { resolve = res; reject = rej })
  return { promise, resolve, reject }
}

const listen = process.argv[2] ?? '/ip4/0.0.0.0/tcp/0'
const interval = Number(process.argv[3] ?? 2000)
const services = { identify: identify() }
if (process.argv[4] === 'ping') services.ping = ping()
const out = (line) => process.stdout.write(line + '\n')

const node = await createLibp2p({
  addresses: { listen: [listen] },
  transports: [tcp()],
  connectionEncrypters: [noise()],
  streamMuxers: [yamux()],
  peerDiscovery: [mdns({ interval })],
  services
})

node.addEventListener('peer:discovery', (evt) => {
  out(`JS_DISCOVERED ${evt.detail.id} ${evt.detail.multiaddrs.map(String).join(' ')}`)
})
node.addEventListener('peer:connect', (evt) => out(`JS_CONNECTED ${evt.detail}`))
node.addEventListener('peer:disconnect', (evt) => out(`JS_DISCONNECTED ${evt.detail}`))
node.addEventListener('peer:identify', (evt) => {
  const { peerId, agentVersion, protocols } = evt.detail
  out(`JS_IDENTIFIED ${peerId} ${agentVersion} ${protocols.join(' ')}`)
})

out(`JS_PEER ${node.peerId}`)
for (const ma of node.getMultiaddrs()) out(`JS_LISTEN ${ma}`)

const stop = async () => { await node.stop(); process.exit(0) }
process.on('SIGTERM', stop)
process.on('SIGINT', stop)
