"""The notification service: tells customers what happened (Redis keys notification:*)."""
