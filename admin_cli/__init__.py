"""The admin CLI (`tala`): invite, summarise, check, operate."""
