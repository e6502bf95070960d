import { Migration } from '@mikro-orm/migrations';

export class Migration20261121234554_user_list_indexes extends Migration {

  override name = 'Migration20261121234554_user_list_indexes';

  override up(): void | Promise<void> {
    this.addSql(`create table "page_token_keys" ("id" int not null, "key" bytea not null, "create_time" timestamptz not null default now(), primary key ("id"));`);

    this.addSql(`create index "users_roles_idx" on "users" using gin ("roles");`);
    this.addSql(`create index "users_username_pattern_idx" on "users" ("username" text_pattern_ops);`);
    this.addSql(`create index "users_email_pattern_idx" on "users" ("email" text_pattern_ops);`);
    this.addSql(`create index "users_first_name_pattern_idx" on "users" (lower("first_name") text_pattern_ops);`);
    this.addSql(`create index "users_last_name_pattern_idx" on "users" (lower("last_name") text_pattern_ops);`);
    this.addSql(`create index "users_disabled_create_time_id_idx" on "users" ("create_time", "id") where disabled;`);
  }

  override down(): void | Promise<void> {
    this.addSql(`drop table if exists "page_token_keys" cascade;`);

    this.addSql(`drop index "users_roles_idx";`);
    this.addSql(`drop index "users_username_pattern_idx";`);
    this.addSql(`drop index "users_email_pattern_idx";`);
    this.addSql(`drop index "users_first_name_pattern_idx";`);
    this.addSql(`drop index "users_last_name_pattern_idx";`);
    this.addSql(`drop index "users_disabled_create_time_id_idx";`);
  }

}
