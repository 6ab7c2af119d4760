"""What a webhook does beyond §2: filters (which events it wants), templates (the body it
sends), auth (how it proves itself to the receiver) and presets (ready-made integrations such
as Slack or Mailchimp). Each is a pure function of an event and the webhook's settings (the
token cache and the template sandbox aside): the service checks them at create and update, the
store and the dispatcher apply them.
"""
