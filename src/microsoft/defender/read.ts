// Defender's JSON rows → the typed entities of types.ts. A field of the wrong type reads as absent
// (null, [] or false) instead of reaching a `.trim()` that throws; a row without the id everything
// keys on is no row (null). zod does the field checks: one schema per entity, read leniently.
import { z } from 'zod';
import type { DefenderAlert, LogonUser, Machine, MachineVulnerability, Vulnerability } from './types.js';

/** A string, made well-formed (a lone surrogate cannot be stored as UTF-8); anything else is null. */
const text = z.string().transform((s) => s.toWellFormed()).nullable().catch(null);
const id = z.string().min(1).transform((s) => s.toWellFormed());
const texts = z.array(z.unknown()).catch([]).transform((xs) => xs.filter((x): x is string => typeof x === 'string'));

const ipEntry = z.object({ ipAddress: text, macAddress: text, type: text, operationalStatus: text });

const machine = z.object({
  id,
  computerDnsName: text, firstSeen: text, lastSeen: text, osPlatform: text, osVersion: text, version: text,
  lastIpAddress: text, lastExternalIpAddress: text, healthStatus: text, riskScore: text, exposureLevel: text,
  deviceValue: text, rbacGroupName: text,
  machineTags: texts,
  ipAddresses: z.array(z.unknown()).catch([])
    .transform((xs) => xs.flatMap((x) => { const r = ipEntry.safeParse(x); return r.success ? [r.data] : []; })),
});

const logonUser = z.object({
  id: text, accountName: text, accountDomain: text, firstSeen: text, lastSeen: text, logonTypes: text,
  isDomainAdmin: z.boolean().nullable().catch(null),
});

const machineVulnerability = z.object({
  id: z.string().optional().catch(undefined), cveId: id, machineId: id, fixingKbId: text, productName: text, productVendor: text, productVersion: text, severity: text,
});

const vulnerability = z.object({
  id, name: text, description: text, severity: text, publishedOn: text, updatedOn: text,
  cvssV3: z.number().finite().nullable().catch(null),
});

const alert = z.object({
  id, title: text, description: text, severity: text, status: text, machineId: text,
  alertCreationTime: text, firstEventTime: text, lastUpdateTime: text,
});

function reader<T>(schema: z.ZodType<T>): (raw: unknown) => T | null {
  return (raw) => {
    const r = schema.safeParse(raw);
    return r.success ? r.data : null;
  };
}

export const readMachine: (raw: unknown) => Machine | null = reader(machine);
export const readLogonUser: (raw: unknown) => LogonUser | null = reader(logonUser);
export const readMachineVulnerability: (raw: unknown) => MachineVulnerability | null = reader(machineVulnerability);
export const readVulnerability: (raw: unknown) => Vulnerability | null = reader(vulnerability);
export const readAlert: (raw: unknown) => DefenderAlert | null = reader(alert);

/** The rows a reader accepts, and how many it could not read (logged by the caller). */
export function readRows<T>(rows: unknown[], read: (raw: unknown) => T | null): { rows: T[]; unreadable: number } {
  const out: T[] = [];
  for (const raw of rows) {
    const row = read(raw);
    if (row !== null) out.push(row);
  }
  return { rows: out, unreadable: rows.length - out.length };
}
