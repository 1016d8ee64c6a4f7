"""botkit's Telegram adapter, on python-telegram-bot.

Enable it with an ``[adapters.telegram]`` table; the token comes from the
``TELEGRAM_BOT_TOKEN`` environment variable. :class:`TelegramSettings` lists every
setting. How it behaves:

- Receiving: long polling by default; the getUpdates offset moves past an update only
  after ``inbox.accept`` returned, so a failed accept means the update is fetched again,
  and a redelivered one is a duplicate the inbox drops. Webhook mode mounts
  ``webhook_path`` on botkit's web server, refuses a missing or wrong
  ``X-Telegram-Bot-Api-Secret-Token`` (401) and bodies that are not updates (400), and
  calls ``setWebhook`` only when Telegram's webhook differs from the configured one.
  A 409 Conflict (another poller) is logged once per episode and backed off.
- Whom it answers: everything in private chats; in groups a mention of ``@botname``, a
  reply to one of its messages, and commands (``/cmd`` and ``/cmd@botname``, which
  reaches the core as ``/cmd``; ``/cmd@otherbot`` is ignored). Other group messages are
  ignored unless ``group_context = true``. Forum topics are conversations of their own
  (``thread_id``); a reply thread in a plain group is not. Edited messages, channel
  posts and service messages are ignored. ``allowed_users``/``allowed_chats`` restrict
  all of it.
- Messages: read through python-telegram-bot's typed ``Update`` where it parses the
  payload, else from the plain JSON (older or newer shapes PTB refuses), to the same
  ``Message``. ``external_id`` is ``"<chat id>:<message id>"``; captions are text; photos,
  documents, voice notes and other files become ``Attachment`` objects, their Telegram
  file ids in ``metadata["files"]`` and their bytes fetched on demand
  (``fetch_attachment``). A sticker or photo without text is answered with
  ``unsupported_reply`` by the adapter itself (``media_without_text = "reply"``) or
  handed to the core with empty text and ``metadata["unsupported"]`` (``"accept"``); a
  document, voice note or audio file always reaches the core, for the plugins that read
  them. A reply's files follow its text as a voice note, audio file or document.
- Replies: Markdown (CommonMark: tables, nested emphasis, escapes, ``` and ~~~ fences)
  is rendered by telegramify-markdown into plain text plus ``MessageEntity`` objects and
  sent without a ``parse_mode``, so Telegram has nothing to fail to parse; long replies
  are split within 4096 UTF-16 units, an entity crossing a split cut into both pieces;
  in groups the first piece quotes the message it answers. Were Telegram to refuse the
  entities anyway, the piece is sent without them and a warning says why (never what).
  Edits re-render the whole text, skip unchanged pieces and treat "message is not
  modified" as success.
- Limits: about one message a second per chat, twenty a minute per group and thirty a
  second overall; a 429 pauses its chat, and a wait over ``max_flood_wait`` raises
  ``RateLimitError`` for the core to reschedule instead of sleeping.
- The token is only ever placed in the request URL, at the last moment; it never
  appears in logs, reprs or error messages.
"""

from botkit_telegram._settings import TelegramSettings
from botkit_telegram.adapter import TelegramAdapter

__all__ = ["TelegramAdapter", "TelegramSettings"]
