import { Migration } from '@mikro-orm/migrations';

export class Migration20261122025214_caller_state_notifications extends Migration {

  override name = 'Migration20261122025214_caller_state_notifications';

  override up(): void | Promise<void> {
    this.addSql(`create or replace function "users_users_notify_caller_state_update_fn"() returns trigger as \$\$ begin perform pg_notify('gatehouse_caller_state', 'u:' || old.id::text); return null; end; \$\$ language plpgsql;`);
    this.addSql(`create trigger "users_notify_caller_state_update" AFTER UPDATE on "users" for each ROW
  when ((old.* IS DISTINCT FROM new.*)) execute function "users_users_notify_caller_state_update_fn"();`);
    this.addSql(`create or replace function "users_users_notify_caller_state_delete_fn"() returns trigger as \$\$ begin perform pg_notify('gatehouse_caller_state', 'u:' || old.id::text); return null; end; \$\$ language plpgsql;`);
    this.addSql(`create trigger "users_notify_caller_state_delete" AFTER DELETE on "users" for each ROW execute function "users_users_notify_caller_state_delete_fn"();`);

    this.addSql(`create or replace function "sessions_sessions_notify_caller_state_update_fn"() returns trigger as \$\$ begin perform pg_notify('gatehouse_caller_state', 's:' || old.id::text); return null; end; \$\$ language plpgsql;`);
    this.addSql(`create trigger "sessions_notify_caller_state_update" AFTER UPDATE on "sessions" for each ROW
  when (((old.revoke_time IS DISTINCT FROM new.revoke_time) OR (old.expire_time IS DISTINCT FROM new.expire_time) OR (old.user_id IS DISTINCT FROM new.user_id))) execute function "sessions_sessions_notify_caller_state_update_fn"();`);
    this.addSql(`create or replace function "sessions_sessions_notify_caller_state_delete_fn"() returns trigger as \$\$ begin perform pg_notify('gatehouse_caller_state', 's:' || old.id::text); return null; end; \$\$ language plpgsql;`);
    this.addSql(`create trigger "sessions_notify_caller_state_delete" AFTER DELETE on "sessions" for each ROW
  when ((old.revoke_time IS NULL)) execute function "sessions_sessions_notify_caller_state_delete_fn"();`);
  }

  override down(): void | Promise<void> {
    this.addSql(`drop trigger if exists "sessions_notify_caller_state_update" on "sessions";`);
    this.addSql(`drop function if exists "sessions_sessions_notify_caller_state_update_fn"();`);
    this.addSql(`drop trigger if exists "sessions_notify_caller_state_delete" on "sessions";`);
    this.addSql(`drop function if exists "sessions_sessions_notify_caller_state_delete_fn"();`);

    this.addSql(`drop trigger if exists "users_notify_caller_state_update" on "users";`);
    this.addSql(`drop function if exists "users_users_notify_caller_state_update_fn"();`);
    this.addSql(`drop trigger if exists "users_notify_caller_state_delete" on "users";`);
    this.addSql(`drop function if exists "users_users_notify_caller_state_delete_fn"();`);
  }

}
