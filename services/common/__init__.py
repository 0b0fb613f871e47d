"""Code both services share. It never imports a service package."""
