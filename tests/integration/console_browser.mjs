// The console in headless Chromium (issue 14, acceptance 1), driven by puppeteer-core: the overview shows
// the streams with their counts, the live tail shows an event published after the page opened within 2 s, a
// SQL query returns the expected rows, a request without the token is refused. Screenshots go to SHOTS.
// Usage: node console_browser.mjs URL TOKEN BROKER_PORT SHOTS_DIR PUPPETEER_PREFIX
import { createRequire } from "node:module";
import { execFileSync } from "node:child_process";
const [url, token, brokerPort, shots, prefix] = process.argv.slice(2);
const require = createRequire(prefix + "/node_modules/");
const puppeteer = require("puppeteer-core");

function check(ok, what) {
  if (!ok) { console.error("FAIL: " + what); process.exitCode = 1; } else console.log("ok: " + what);
}
const browser = await puppeteer.launch({ executablePath: process.env.CHROMIUM || "/usr/bin/chromium", headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"], protocolTimeout: 30000 });
try {
  const page = await browser.newPage();
  await page.setViewport({ width: 1200, height: 1000 });
  // Without a token the page asks for one (a prompt); the test answers no and checks the API itself.
  page.on("dialog", d => d.dismiss());
  // Without the token: the API refuses (the page would prompt; here the fetch is made by hand).
  await page.goto(url, { waitUntil: "domcontentloaded" });
  const status = await page.evaluate(async () => (await fetch("/api/overview")).status);
  check(status === 401, "a request without the token gets 401 (got " + status + ")");
  await page.evaluateOnNewDocument(t => sessionStorage.setItem("ferry-token", t), token);
  await page.goto(url, { waitUntil: "domcontentloaded" });
  await page.waitForFunction(() => [...document.querySelectorAll("#streams tbody tr")]
    .some(tr => tr.cells[0].textContent === "telemetry" && tr.cells[1].textContent === "3"), { timeout: 10000 });
  check(true, "the overview shows telemetry with 3 events");
  await page.screenshot({ path: shots + "/console-overview.png", fullPage: true });
  await page.waitForFunction(() => document.getElementById("tstate").textContent === "live", { timeout: 10000 });
  const t0 = Date.now();
  execFileSync("mosquitto_pub", ["-h", "127.0.0.1", "-p", brokerPort, "-q", "1", "-t", "telemetry/dev-browser/x",
                                 "-m", "{\"temp\":77.7}"]);
  await page.waitForFunction(() => [...document.querySelectorAll("#tail .rec")].some(d => d.textContent.includes("77.7")),
                             { timeout: 2000 });
  check(Date.now() - t0 <= 2000, "the live tail showed the new event in " + (Date.now() - t0) + " ms");
  await page.screenshot({ path: shots + "/console-tail.png", fullPage: true });
  await page.$eval("#sql", el => { el.value = "SELECT subject FROM telemetry WHERE subject LIKE 'dev-_' ORDER BY seq"; });
  await page.click("#sgo");
  await page.waitForFunction(() => document.querySelectorAll("#sres tbody tr").length === 3, { timeout: 5000 });
  const rows = await page.$$eval("#sres tbody tr", trs => trs.map(tr => tr.cells[0].textContent));
  check(JSON.stringify(rows) === JSON.stringify(["dev-0", "dev-1", "dev-2"]), "SQL rows " + JSON.stringify(rows));
  await page.screenshot({ path: shots + "/console-sql.png", fullPage: true });
} finally {
  await browser.close();
}
