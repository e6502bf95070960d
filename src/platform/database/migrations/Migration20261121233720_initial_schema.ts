import { Migration } from '@mikro-orm/migrations';

export class Migration20261121233720_initial_schema extends Migration {

  override name = 'Migration20261121233720_initial_schema';

  override up(): void | Promise<void> {
    this.addSql(`create table "signing_keys" ("kid" varchar(64) not null, "algorithm" varchar(16) not null, "public_jwk" jsonb not null, "private_jwk" jsonb not null, "create_time" timestamptz not null default now(), "retire_time" timestamptz null, "remove_time" timestamptz null, primary key ("kid"));`);

    this.addSql(`create table "users" ("id" uuid not null default gen_random_uuid(), "username" varchar(32) not null, "email" varchar(254) not null, "password_hash" text not null, "first_name" varchar(100) not null default '', "last_name" varchar(100) not null default '', "roles" text[] not null default '{}', "disabled" boolean not null default false, "create_time" timestamptz not null default now(), "update_time" timestamptz not null default now(), "last_login_time" timestamptz null, primary key ("id"));`);
    this.addSql(`alter table "users" add constraint "users_username_key" unique ("username");`);
    this.addSql(`alter table "users" add constraint "users_email_key" unique ("email");`);
    this.addSql(`create index "users_create_time_id_idx" on "users" ("create_time", "id");`);

    this.addSql(`create table "sessions" ("id" uuid not null default gen_random_uuid(), "user_id" uuid not null, "create_time" timestamptz not null default now(), "last_use_time" timestamptz not null default now(), "expire_time" timestamptz not null, "revoke_time" timestamptz null, "revoke_reason" varchar(64) null, "user_agent" varchar(512) not null default '', "ip_address" varchar(64) not null default '', primary key ("id"));`);
    this.addSql(`create index "sessions_user_id_idx" on "sessions" ("user_id");`);
    this.addSql(`create index "sessions_expire_time_idx" on "sessions" ("expire_time");`);

    this.addSql(`create table "refresh_tokens" ("token_hash" bytea not null, "session_id" uuid not null, "create_time" timestamptz not null default now(), "rotate_time" timestamptz null, primary key ("token_hash"));`);
    this.addSql(`create index "refresh_tokens_session_id_idx" on "refresh_tokens" ("session_id");`);

    this.addSql(`create table "invitations" ("id" uuid not null default gen_random_uuid(), "code_hash" bytea not null, "roles" text[] not null default '{}', "email" varchar(254) null, "max_uses" int not null default 1, "use_count" int not null default 0, "expire_time" timestamptz not null, "create_time" timestamptz not null default now(), "creator_id" uuid null, primary key ("id"));`);
    this.addSql(`alter table "invitations" add constraint "invitations_code_hash_key" unique ("code_hash");`);
    this.addSql(`create index "invitations_create_time_id_idx" on "invitations" ("create_time", "id");`);

    this.addSql(`alter table "sessions" add constraint "sessions_user_id_foreign" foreign key ("user_id") references "users" ("id") on delete cascade;`);

    this.addSql(`alter table "refresh_tokens" add constraint "refresh_tokens_session_id_foreign" foreign key ("session_id") references "sessions" ("id") on delete cascade;`);

    this.addSql(`alter table "invitations" add constraint "invitations_creator_id_foreign" foreign key ("creator_id") references "users" ("id") on delete set null;`);
  }

}
