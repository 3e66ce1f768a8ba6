// Serves the page on 127.0.0.1 and has a headless Chromium (Debian's, through
// puppeteer-core) open it against a node; for scripts/browser-netns.sh, run
// inside the browser's own network namespace.
//
//   node web/drive.mjs <node /ws/p2p address> <screenshot.png> [count] [chromium path]
//
// The page is served from 127.0.0.1 (a page from a private address may not
// dial loopback under Chrome's local-network rules; a localhost page may dial
// a private address) and POSTs its summary to /report; this prints that
// summary as one JSON line on stdout and saves a screenshot of the page.
// Exits 0 if the page reported pass, 1 if it reported fail, 2 if it reported
// nothing within the deadline.
import { readFile } from 'node:fs/promises'
import { createServer } from 'node:http'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import puppeteer from 'puppeteer-core'

const here = dirname(fileURLToPath(import.meta.url))
const [addr, screenshot, count = '100', chromium = '/usr/bin/chromium'] = process.argv.slice(2)
const DEADLINE_MS = Number(process.env.PAGE_DEADLINE_MS ?? 60000)
if (addr == null || screenshot == null) {
  process.stderr.write('usage: node drive.mjs <multiaddr>/ws/p2p/<id> <screenshot.png> [count] [chromium]\n')
  process.exit(2)
}

const files = { '/': ['index.html', 'text/html'], '/dist/page.js': ['dist/page.js', 'text/javascript'] }
let resolveReport
const reported = new Promise((resolve) => { resolveReport = resolve })
const server = createServer(async (req, res) => {
  const path = new URL(req.url, 'http://127.0.0.1').pathname
  if (req.method === 'POST' && path === '/report') {
    let body = ''
    for await (const chunk of req) body += chunk
    res.writeHead(204).end()
    try { resolveReport(JSON.parse(body)) } catch { resolveReport({ pass: false, error: `bad report: ${body}` }) }
    return
  }
  const file = files[path]
  if (req.method !== 'GET' || file == null) { res.writeHead(404).end(); return }
  res.writeHead(200, { 'content-type': file[1] }).end(await readFile(join(here, file[0])))
})
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
const url = `http://127.0.0.1:${server.address().port}/?addr=${encodeURIComponent(addr)}&count=${count}&report=/report`
process.stderr.write(`# page: ${url}\n`)

const browser = await puppeteer.launch({
  executablePath: chromium,
  headless: true,
  // Root in a namespace: Chromium's own sandbox needs user namespaces it
  // does not get here; the page is ours and talks only to our namespaces.
  args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
  defaultViewport: { width: 1100, height: 1000 }
})
let code = 2
try {
  const page = await browser.newPage()
  page.on('console', (msg) => process.stderr.write(`# console.${msg.type()}: ${msg.text()}\n`))
  page.on('pageerror', (err) => process.stderr.write(`# page error: ${err.message}\n`))
  process.stderr.write(`# ${await browser.version()}\n`)
  await page.goto(url)
  let timer
  const summary = await Promise.race([
    reported,
    new Promise((resolve) => { timer = setTimeout(() => resolve(null), DEADLINE_MS) })
  ])
  clearTimeout(timer)
  await page.screenshot({ path: screenshot, fullPage: true })
  if (summary == null) {
    process.stderr.write(`# no report within ${DEADLINE_MS} ms; the page shows:\n${await page.$eval('body', (b) => b.innerText)}\n`)
  } else {
    process.stdout.write(JSON.stringify(summary) + '\n')
    code = summary.pass ? 0 : 1
  }
} finally {
  await browser.close()
  server.close()
}
process.exit(code)
