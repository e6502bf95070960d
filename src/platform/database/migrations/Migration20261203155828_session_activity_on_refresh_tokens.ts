import { Migration } from '@mikro-orm/migrations';

// A session's last use and client move from the session row (rewritten by every refresh) to its
// current refresh token, which every refresh writes anyway. The current token's create_time
// already equals the session's last_use_time: sign-in and refresh always wrote both with one time.
export class Migration20261203155828_session_activity_on_refresh_tokens extends Migration {

  override name = 'Migration20261203155828_session_activity_on_refresh_tokens';

  override up(): void | Promise<void> {
    this.addSql(`alter table "refresh_tokens" add "user_agent" varchar(512) not null default '', add "ip_address" varchar(64) not null default '';`);
    this.addSql(`update "refresh_tokens" t set "user_agent" = s."user_agent", "ip_address" = s."ip_address" from "sessions" s where s."id" = t."session_id" and t."rotate_time" is null;`);
    this.addSql(`alter table "sessions" drop column "ip_address", drop column "last_use_time", drop column "user_agent";`);

    this.addSql(`drop index "refresh_tokens_session_id_idx";`);
    this.addSql(`create index "refresh_tokens_session_id_create_time_idx" on "refresh_tokens" ("session_id", "create_time");`);
  }

  override down(): void | Promise<void> {
    this.addSql(`alter table "sessions" add "ip_address" varchar(64) not null default '', add "last_use_time" timestamptz(6) not null default now(), add "user_agent" varchar(512) not null default '';`);
    this.addSql(`update "sessions" s set "last_use_time" = t."create_time", "user_agent" = t."user_agent", "ip_address" = t."ip_address" from "refresh_tokens" t where t."session_id" = s."id" and t."rotate_time" is null;`);

    this.addSql(`drop index "refresh_tokens_session_id_create_time_idx";`);
    this.addSql(`alter table "refresh_tokens" drop column "user_agent", drop column "ip_address";`);
    this.addSql(`create index "refresh_tokens_session_id_idx" on "refresh_tokens" ("session_id");`);
  }

}
