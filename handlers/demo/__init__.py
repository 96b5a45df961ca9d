"""`privacy-desk demo`: the whole pipeline on bundled sample emails, offline, and its renderings.

- `simulation`: the sample emails through the real intake, the Slack senders and the daily
  deadline job on a temporary SQLite database, with Slack replaced by an offline client; returns
  a `Transcript` of what the bot posted and queued;
- `text` and `html`: Block Kit (and a whole transcript) as terminal text or as a page that looks
  like a Slack channel; `mrkdwn` reads Slack's markup for both. The renderers are pure.
"""
