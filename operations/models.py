"""The operations domain owns no table: its state is the backup directory (base backups, WAL, JSON)."""
