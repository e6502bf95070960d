import { Migration } from '@mikro-orm/migrations';

export class Migration20261122003138_audit_trail extends Migration {

  override name = 'Migration20261122003138_audit_trail';

  override up(): void | Promise<void> {
    this.addSql(`create table "audit_events" ("id" uuid not null default gen_random_uuid(), "time" timestamptz not null, "type" varchar(64) not null, "outcome" varchar(16) not null, "actor_user_id" uuid null, "subject_user_id" uuid null, "session_id" uuid null, "ip" varchar(64) not null default '', "user_agent" varchar(512) not null default '', "details" jsonb not null, primary key ("id"));`);
    this.addSql(`create index "audit_events_time_id_idx" on "audit_events" ("time", "id");`);
    this.addSql(`create index "audit_events_actor_time_id_idx" on "audit_events" ("actor_user_id", "time", "id");`);
    this.addSql(`create index "audit_events_subject_time_id_idx" on "audit_events" ("subject_user_id", "time", "id");`);
    this.addSql(`create index "audit_events_type_time_id_idx" on "audit_events" ("type", "time", "id");`);
  }

  override down(): void | Promise<void> {
    this.addSql(`drop table if exists "audit_events" cascade;`);
  }

}
