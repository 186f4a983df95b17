from django.shortcuts import render


def index(request):
    """The landing page: where owners, staff and clients sign in."""
    return render(request, "index.html")
