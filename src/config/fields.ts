// Field types several config sections share.
import { z } from 'zod';
import { OBSERVABLE_TYPES } from '../core/types.js';

export const httpUrl = z
  .string()
  .url()
  .refine((u) => /^https?:\/\//i.test(u), 'must start with http:// or https://')
  // A password in a URL ends up in logs, links and command output: credentials have their own keys.
  .refine((u) => !/^https?:\/\/[^/?#]*@/i.test(u), 'must not carry credentials (user:password@); remove them and use the token or key setting of this system')
  .transform((u) => u.replace(/\/+$/, ''));

// pycti (the official connectors) spells warn `warning`: its settings work unchanged.
export const logLevel = z
  .string()
  .transform((s) => s.toLowerCase())
  .transform((s) => (s === 'warning' ? 'warn' : s))
  .pipe(z.enum(['trace', 'debug', 'info', 'warn', 'error']));

export const observableType = z.enum(OBSERVABLE_TYPES as [string, ...string[]]);

/** Sinks that take indicators; each indicator source lists the ones it feeds (`<source>.targets`). */
export const INDICATOR_SINKS = ['defender', 'sentinel'] as const;
export type IndicatorSinkName = (typeof INDICATOR_SINKS)[number];

export const indicatorTargets = z
  .array(z.enum(INDICATOR_SINKS))
  .default(['defender'])
  .transform((t) => [...new Set(t)]);
