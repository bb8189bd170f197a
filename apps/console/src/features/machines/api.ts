import type { Explanation, Machine, MachineList, Report } from '@clp/protocol';
import { endpoint } from '../../lib/api-client.ts';

export const listMachines = endpoint<MachineList>('listMachines', 'GET', '/v1/machines');
export const getMachine = endpoint<Machine & { recentReports: Report[] }>(
  'getMachine',
  'GET',
  '/v1/machines/:id',
);
export const explainMachine = endpoint<Explanation>('explainMachine', 'GET', '/v1/machines/:id/explain');
export const revokeMachine = endpoint<Machine>('revokeMachine', 'POST', '/v1/machines/:id/revoke');
