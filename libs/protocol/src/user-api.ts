import { z } from 'zod';
import { ADMIN_ROLES } from './admin-api.ts';

const username = z
  .string()
  .regex(
    /^[a-z0-9][a-z0-9._-]{0,63}$/,
    'lowercase letters, digits and . _ -, at most 64, starting with a letter or digit',
  );
/** Long enough that a guessed list does not find it; no other rule (NIST SP 800-63B). */
const password = z.string().min(12, 'at least 12 characters').max(256);

export const User = z.object({
  id: z.string(),
  username: z.string(),
  role: z.enum(ADMIN_ROLES),
  createdBy: z.string(),
  createdAt: z.string(),
  passwordChangedAt: z.string(),
  disabled: z.boolean(),
});
export type User = z.infer<typeof User>;

export const UserList = z.object({ users: z.array(User), total: z.number() });
export type UserList = z.infer<typeof UserList>;

export const UserListQuery = z.object({
  limit: z.coerce.number().int().min(1).max(1000).default(100),
  offset: z.coerce.number().int().min(0).default(0),
});

export const CreateUserBody = z.object({ username, role: z.enum(ADMIN_ROLES), password });
export type CreateUserBody = z.infer<typeof CreateUserBody>;

/** A new password or a disabled account ends the user's sessions. */
export const EditUserBody = z
  .object({
    role: z.enum(ADMIN_ROLES).optional(),
    password: password.optional(),
    disabled: z.boolean().optional(),
  })
  .refine((b) => b.role !== undefined || b.password !== undefined || b.disabled !== undefined, {
    message: 'give at least one of role, password, disabled',
  });
export type EditUserBody = z.infer<typeof EditUserBody>;

/** A user changing their own password: the current one proves who they are. */
export const ChangePasswordBody = z.object({
  username: z.string().min(1).max(64),
  currentPassword: z.string().min(1).max(256),
  newPassword: password,
});
export type ChangePasswordBody = z.infer<typeof ChangePasswordBody>;
