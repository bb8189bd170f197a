import { existsSync } from 'node:fs';
import { join } from 'node:path';
import express, { type Express, type Response } from 'express';

/**
 * Everything the console loads comes from this server (isolated networks; no CDN, fonts or
 * scripts from elsewhere), so its pages forbid the rest: no inline script or style, no framing.
 */
export const CONSOLE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "font-src 'self'",
  "connect-src 'self'",
  "manifest-src 'self'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

function secure(res: Response): void {
  res.setHeader('Content-Security-Policy', CONSOLE_CSP);
  res.setHeader('X-Content-Type-Options', 'nosniff');
  res.setHeader('X-Frame-Options', 'DENY');
  res.setHeader('Referrer-Policy', 'no-referrer');
  res.setHeader('Cross-Origin-Opener-Policy', 'same-origin');
}

/**
 * Serves the built console (apps/console/dist) at /console/. Any other path below /console/ is a
 * page of the console (a deep link such as /console/rollouts/ID): it gets index.html, and the
 * console's router shows the page. Hashed assets are cached for good; index.html never.
 */
export function mountConsole(app: Express, dir: string): void {
  const index = join(dir, 'index.html');
  app.get('/', (_req, res) => res.redirect(302, '/console/'));
  app.use(
    '/console/assets',
    express.static(join(dir, 'assets'), {
      immutable: true,
      maxAge: '365d',
      index: false,
      fallthrough: true,
      setHeaders: secure,
    }),
  );
  app.get('/console/{*page}', (req, res) => {
    // The console's relative asset paths need the trailing slash.
    if (req.originalUrl === '/console' || req.originalUrl.startsWith('/console?')) {
      res.redirect(301, `/console/${req.originalUrl.slice('/console'.length)}`);
      return;
    }
    secure(res);
    res.setHeader('Cache-Control', 'no-cache');
    if (!existsSync(index)) {
      res
        .status(503)
        .type('text/plain')
        .send(`the console is not built: run npm run build (looked for ${index})\n`);
      return;
    }
    res.sendFile(index);
  });
}
