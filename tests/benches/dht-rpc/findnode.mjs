// The anchor, measured here: a 96-node dht-rpc network on loopback
// (all nodes in this one Node.js process, as dht-rpc's own tests build
// networks), timing findNode of existing node ids from one node.
//
//   node findnode.mjs [nodes=96] [lookups=500] [concurrency=16]
//
// Prints one JSON line: mean/p50/p99 of sequential findNode in ms from one
// node, and findNode/s with `concurrency` lookups in flight, each from a
// random node (as the Rust bench spreads its lookups over every node).
import DHT from 'dht-rpc'
import dgram from 'dgram'

const [N = 96, LOOKUPS = 500, CONC = 16] = process.argv.slice(2).map(Number)
const HOST = '127.0.0.1'

// The bootstrapper's id is derived from its address, so it needs a real
// port up front: ask the OS for a free one.
const port = await new Promise((resolve) => {
  const s = dgram.createSocket('udp4')
  s.bind(0, HOST, () => { const p = s.address().port; s.close(() => resolve(p)) })
})
const boot = DHT.bootstrapper(port, HOST, { host: HOST, ephemeral: false, firewalled: false })
await boot.fullyBootstrapped()
const bootstrap = [`${HOST}:${port}`]
const nodes = [boot]
for (let i = 1; i < N; i++) {
  const n = new DHT({ bootstrap, host: HOST, ephemeral: false, firewalled: false })
  nodes.push(n)
  await n.fullyBootstrapped()
}
// Refresh once more so early joiners know the late ones.
await Promise.all(nodes.map((n) => n.refresh ? n.refresh() : null))
await new Promise((r) => setTimeout(r, 1000))

const from = nodes[1]
const targets = nodes.filter((n) => n !== from && n.id).map((n) => n.id)
const pick = () => targets[Math.floor(Math.random() * targets.length)]

async function one (node = from) {
  const t0 = process.hrtime.bigint()
  const q = node.findNode(pick())
  await q.finished()
  return Number(process.hrtime.bigint() - t0) / 1e6
}

for (let i = 0; i < 20; i++) await one() // warm-up
const ms = []
for (let i = 0; i < LOOKUPS; i++) ms.push(await one())
ms.sort((a, b) => a - b)
const q = (p) => ms[Math.min(ms.length - 1, Math.floor(p * ms.length))]
const mean = ms.reduce((a, b) => a + b, 0) / ms.length

let done = 0
const t0 = process.hrtime.bigint()
await Promise.all(Array.from({ length: CONC }, async () => {
  while (done < LOOKUPS) { done++; await one(nodes[Math.floor(Math.random() * N)]) }
}))
const secs = Number(process.hrtime.bigint() - t0) / 1e9

const table = nodes.map((n) => n.table.toArray().length)
console.log(JSON.stringify({
  impl: `dht-rpc ${(await import('dht-rpc/package.json', { with: { type: 'json' } })).default.version}`,
  node: process.version,
  nodes: N,
  lookups: LOOKUPS,
  mean_ms: +mean.toFixed(3),
  p50_ms: +q(0.5).toFixed(3),
  p99_ms: +q(0.99).toFixed(3),
  concurrency: CONC,
  per_s: Math.round(done / secs),
  table_median: table.sort((a, b) => a - b)[table.length >> 1]
}))
await Promise.all(nodes.map((n) => n.destroy()))
