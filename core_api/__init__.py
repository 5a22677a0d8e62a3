"""The lean core API: accounts, businesses, reports and notifications, each owning its tables."""
