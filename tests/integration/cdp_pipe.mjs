// A small Chrome DevTools Protocol client over --remote-debugging-pipe: Chromium reads NUL-terminated JSON
// commands on its fd 3 and writes replies and events on its fd 4. Plain Node (Debian 12's nodejs 18 has no
// WebSocket), so the browser test needs nothing from npm at run time.
//
// Every wait has a deadline the caller gives; a command whose reply does not come within `commandTimeoutMs`
// rejects (Chromium stuck on a busy machine is a failure with a message, not a hung test).
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export class Browser {
  static async launch({ executablePath, commandTimeoutMs = 30000 }) {
    const profile = mkdtempSync(join(tmpdir(), "ferry-cdp-"));
    const proc = spawn(executablePath, [
      "--headless=new", "--remote-debugging-pipe", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
      "--no-first-run", "--no-default-browser-check", "--disable-extensions", "--disable-background-networking",
      "--disable-component-update", "--disable-sync", "--mute-audio", "--hide-scrollbars",
      "--user-data-dir=" + profile, "about:blank",
    ], { stdio: ["ignore", "ignore", "pipe", "pipe", "pipe"] });
    const b = new Browser(proc, profile, commandTimeoutMs);
    await b.send("Browser.getVersion");  // Chromium is up and the pipe answers
    return b;
  }

  constructor(proc, profile, commandTimeoutMs) {
    this.proc = proc;
    this.profile = profile;
    this.commandTimeoutMs = commandTimeoutMs;
    this.nextId = 1;
    this.pending = new Map();
    this.listeners = [];
    this.stderr = "";
    this.exited = false;
    proc.stderr.on("data", d => { this.stderr = (this.stderr + d).slice(-4000); });
    proc.on("exit", code => {
      this.exited = true;
      for (const p of this.pending.values()) p.reject(new Error("chromium exited (" + code + "): " + this.stderr));
      this.pending.clear();
    });
    let buf = "";
    proc.stdio[4].setEncoding("utf8");
    proc.stdio[4].on("data", chunk => {
      buf += chunk;
      let end;
      while ((end = buf.indexOf("\0")) >= 0) {
        const msg = JSON.parse(buf.slice(0, end));
        buf = buf.slice(end + 1);
        if (msg.id !== undefined) {
          const p = this.pending.get(msg.id);
          if (!p) continue;
          this.pending.delete(msg.id);
          if (msg.error) p.reject(new Error(p.method + ": " + msg.error.message));
          else p.resolve(msg.result);
        } else {
          for (const l of this.listeners) l(msg);
        }
      }
    });
  }

  send(method, params = {}, sessionId = undefined) {
    if (this.exited) return Promise.reject(new Error("chromium has exited: " + this.stderr));
    const id = this.nextId++;
    const msg = { id, method, params };
    if (sessionId) msg.sessionId = sessionId;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(method + ": no reply within " + this.commandTimeoutMs + " ms"));
      }, this.commandTimeoutMs);
      this.pending.set(id, {
        method,
        resolve: v => { clearTimeout(timer); resolve(v); },
        reject: e => { clearTimeout(timer); reject(e); },
      });
      this.proc.stdio[3].write(JSON.stringify(msg) + "\0");
    });
  }

  on(fn) { this.listeners.push(fn); }

  async newPage({ width, height }) {
    const { targetId } = await this.send("Target.createTarget", { url: "about:blank" });
    const { sessionId } = await this.send("Target.attachToTarget", { targetId, flatten: true });
    const page = new Page(this, sessionId);
    await page.send("Page.enable");
    await page.send("Runtime.enable");
    await page.send("Emulation.setDeviceMetricsOverride", { width, height, deviceScaleFactor: 1, mobile: false });
    return page;
  }

  async close() {
    try { await this.send("Browser.close"); } catch { /* already gone */ }
    if (!this.exited) await new Promise(r => { this.proc.once("exit", r); setTimeout(() => { this.proc.kill("SIGKILL"); r(); }, 5000); });
    rmSync(this.profile, { recursive: true, force: true });
  }
}

export class Page {
  constructor(browser, sessionId) {
    this.browser = browser;
    this.sessionId = sessionId;
    this.loadWaiters = [];
    browser.on(msg => {
      if (msg.sessionId !== sessionId) return;
      if (msg.method === "Page.javascriptDialogOpening") {
        // The page's token prompt on a tokenless visit: answered "cancel", as a user without a token would.
        this.send("Page.handleJavaScriptDialog", { accept: false }).catch(() => {});
      } else if (msg.method === "Page.domContentEventFired") {
        for (const w of this.loadWaiters.splice(0)) w();
      }
    });
  }

  send(method, params = {}) { return this.browser.send(method, params, this.sessionId); }

  // Navigates and waits for DOMContentLoaded, up to `timeoutMs`.
  async goto(url, timeoutMs) {
    const loaded = new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error("goto " + url + ": no DOMContentLoaded in " + timeoutMs + " ms")),
                           timeoutMs);
      this.loadWaiters.push(() => { clearTimeout(t); resolve(); });
    });
    const r = await this.send("Page.navigate", { url });
    if (r.errorText) throw new Error("goto " + url + ": " + r.errorText);
    await loaded;
  }

  // Runs `fn` (a function, serialised) in the page with JSON-able `args`; returns its (awaited) value.
  async evaluate(fn, ...args) {
    const r = await this.send("Runtime.evaluate", {
      expression: "(" + fn.toString() + ")(..." + JSON.stringify(args) + ")", awaitPromise: true, returnByValue: true,
    });
    if (r.exceptionDetails) {
      throw new Error("evaluate: " + (r.exceptionDetails.exception?.description || r.exceptionDetails.text));
    }
    return r.result.value;
  }

  // Before every document of this page, runs `fn(...args)`.
  async evaluateOnNewDocument(fn, ...args) {
    await this.send("Page.addScriptToEvaluateOnNewDocument",
                    { source: "(" + fn.toString() + ")(..." + JSON.stringify(args) + ")" });
  }

  // Polls `fn` in the page every 25 ms until it returns something truthy; throws `what` after `timeoutMs`.
  async waitFor(fn, timeoutMs, what, ...args) {
    const deadline = Date.now() + timeoutMs;
    let last;
    for (;;) {
      last = await this.evaluate(fn, ...args);
      if (last) return last;
      if (Date.now() >= deadline) throw new Error("waited " + timeoutMs + " ms for " + what + " (last: " + JSON.stringify(last) + ")");
      await new Promise(r => setTimeout(r, 25));
    }
  }

  // A PNG of the whole page (beyond the viewport), as a Buffer.
  async screenshot() {
    const r = await this.send("Page.captureScreenshot", { format: "png", captureBeyondViewport: true });
    return Buffer.from(r.data, "base64");
  }
}
