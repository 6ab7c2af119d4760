"""What a webhook does beyond §2: filters, templates, auth, presets."""
