"""The gettext catalogs (domain ``tala``). Swedish is the source language: msgids are Swedish."""
