"""engagehook: a reliable receiver for Pexip Engage appointment webhooks."""
