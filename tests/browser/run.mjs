// Opens a page in Debian's chromium (headless, WebGPU enabled, SwiftShader's
// Vulkan where there is no GPU), waits for the page to set
// `window.kilnVerdict`, and prints that verdict as JSON. Used by
// tests/browser.rs:   node tests/browser/run.mjs URL [TIMEOUT_MS]
import { chromium } from "playwright-core";

const [url, timeout = "120000"] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  headless: true,
  args: [
    "--enable-unsafe-webgpu",
    "--enable-features=Vulkan",
    "--use-vulkan=swiftshader",
    "--use-webgpu-adapter=swiftshader",
    "--no-sandbox",
  ],
});
try {
  const page = await browser.newPage();
  page.on("console", (m) => console.error(`[page] ${m.text()}`));
  page.on("pageerror", (e) => console.error(`[page error] ${e.message}`));
  await page.goto(url);
  const verdict = await page.waitForFunction(() => window.kilnVerdict, null, { timeout: Number(timeout) });
  console.log(JSON.stringify(await verdict.jsonValue()));
} finally {
  await browser.close();
}
