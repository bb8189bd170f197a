import { defineConfig } from 'drizzle-kit';

// Generation is offline: `npx drizzle-kit generate` in db/ compares the schema with db/migrations.
export default defineConfig({
  dialect: 'postgresql',
  schema: './src/schema.ts',
  out: './migrations',
});
