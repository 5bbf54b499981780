"""The conversation service every channel and the CLI use: one class made of its jobs.

    bot/receive.py       a child's message on any channel -> its session (found, bound or
                         started) -> the conversation
    bot/conversation.py  a session's message or the clock -> the engine -> Redis, SQL, replies
    bot/invitations.py   inviting, and the codes a chat opens an invitation with
    bot/contacts.py      numbers and chats, STOP/START, sending first, replies, erasure
    bot/fallback.py      WhatsApp's 24 hours, and SMS when WhatsApp cannot take a message
    bot/weblinks.py      the web chat's links, sent by SMS, and the device a link is open on
    bot/campaigns.py     anonymous group surveys
    bot/notify.py        who hears of an alert, by which route, at which hours
"""

from __future__ import annotations

from bot.campaigns import ALWAYS_RESERVED, CampaignError, Campaigns  # noqa: F401
from bot.contacts import MAX_REPLY, Contacts, ReplyError  # noqa: F401
from bot.fallback import Fallback
from bot.conversation import (FINISHED_TTL, ConversationCore, Outbound, Reply,  # noqa: F401
                              SessionGone, utcnow)
from bot.invitations import (CODE_ALPHABET, CODE_CHANNELS, MAX_CODE_TRIES,  # noqa: F401
                             STAFF_ROUTES, CodeError, Invitations, Invited, InviteError)
from bot.receive import Received, Receiving  # noqa: F401
from bot.weblinks import WebLinks


class ConversationService(Receiving, Invitations, Contacts, Fallback, WebLinks, Campaigns,
                          ConversationCore):
    """Everything a channel or a staff command asks of a conversation (see the modules)."""
