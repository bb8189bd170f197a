import type { Overview } from '@clp/protocol';
import { endpoint } from '../../lib/api-client.ts';

export const getOverview = endpoint<Overview>('getOverview', 'GET', '/v1/overview');
