import type { Command } from 'commander';
import type { GlobalOptions } from '../output.ts';
import { admin } from './admin.ts';
import { config } from './config.ts';
import { create } from './create.ts';
import { daemon } from './daemon.ts';
import { enroll } from './enroll.ts';
import { explain } from './explain.ts';
import { history } from './history.ts';
import { inspect } from './inspect.ts';
import { install } from './install.ts';
import { keygen } from './keygen.ts';
import { list } from './list.ts';
import { newPatch } from './new.ts';
import { pkg } from './pkg.ts';
import { recoverCommand } from './recover.ts';
import { show } from './show.ts';
import { sign } from './sign.ts';
import { status } from './status.ts';
import { uninstall } from './uninstall.ts';
import { update } from './update.ts';
import { verify } from './verify.ts';

/** A command file exports one of these; it adds its subcommand to the program and returns it. */
export type RegisterCommand = (program: Command, globals: () => GlobalOptions) => Command;

/** Every clpctl command, in the order `--help` lists them. One file per command. */
export const COMMANDS: RegisterCommand[] = [
  keygen,
  newPatch,
  create,
  sign,
  verify,
  inspect,
  install,
  uninstall,
  list,
  status,
  history,
  show,
  recoverCommand,
  explain,
  admin,
  enroll,
  update,
  daemon,
  config,
  pkg,
];
