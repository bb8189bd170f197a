import type { ChangePasswordBody, CreateUserBody, EditUserBody, User, UserList } from '@clp/protocol';
import { endpoint } from '../../lib/api-client.ts';

export const listUsers = endpoint<UserList>('listUsers', 'GET', '/v1/users');
export const createUser = endpoint<User, CreateUserBody>('createUser', 'POST', '/v1/users');
export const editUser = endpoint<User, EditUserBody>('editUser', 'PATCH', '/v1/users/:id');
export const changeOwnPassword = endpoint<User, ChangePasswordBody>(
  'changeOwnPassword',
  'POST',
  '/v1/users/password',
  { public: true },
);
