"""Notifications: the inbox (list, unread count, mark read) and scheduled notifications delivered
exactly once by a job, through a push-provider interface."""
