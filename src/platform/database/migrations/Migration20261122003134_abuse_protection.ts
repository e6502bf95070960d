import { Migration } from '@mikro-orm/migrations';

export class Migration20261122003134_abuse_protection extends Migration {

  override name = 'Migration20261122003134_abuse_protection';

  override up(): void | Promise<void> {
    this.addSql(`create table "login_failures" ("identifier_key" bytea not null, "address" varchar(64) not null, "failures" int not null default 0, "last_failure_time" timestamptz not null, primary key ("identifier_key", "address"));`);
    this.addSql(`create index "login_failures_last_failure_time_idx" on "login_failures" ("last_failure_time");`);

    this.addSql(`create table "rate_limit_windows" ("key" varchar(128) not null, "window_start" timestamptz not null, "hits" int not null default 0, "allowed" boolean not null default true, "expire_time" timestamptz not null, primary key ("key", "window_start"));`);
    this.addSql(`create index "rate_limit_windows_expire_time_idx" on "rate_limit_windows" ("expire_time");`);
  }

  override down(): void | Promise<void> {
    this.addSql(`drop table if exists "login_failures" cascade;`);
    this.addSql(`drop table if exists "rate_limit_windows" cascade;`);
  }

}
