-- Teams users by their MRI (bot/teams_users.py): the id Teams gives a user in the bot's
-- activities (``from.id``, ``29:...``) and in conversation rosters, which is what an
-- Adaptive Card's ``refresh.userIds`` must list. ``email`` is who they are to jitgate by
-- the mapping rules of bot/teams_conversations.py when last seen.
CREATE TABLE teams_users (
    mri        text PRIMARY KEY,
    object_id  text,
    email      text NOT NULL,
    seen_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX teams_users_seen ON teams_users (seen_at DESC);
