# pip-and-virtualenv: the Red Hat family (CentOS, RHEL) takes pip and
# virtualenv from packages only; a source install is refused there.
if [[ ${DISTRO_NAME:-} =~ (centos|rhel) ]]; then
    export DIB_INSTALLTYPE_pip_and_virtualenv=${DIB_INSTALLTYPE_pip_and_virtualenv:-package}
    if [[ $DIB_INSTALLTYPE_pip_and_virtualenv == source ]]; then
        echo "pip-and-virtualenv: no source install on ${DISTRO_NAME:-}/${DIB_RELEASE:-}" >&2
        return 1
    fi
fi

# In the chroot phases (where dib-python exists): how to run pip and make a
# virtual environment with the image's Python. The link is resolved so
# scripts do not end up with #!/usr/local/bin/dib-python.
if [[ -e /usr/local/bin/dib-python ]]; then
    _dib_python_path=$(readlink -f /usr/local/bin/dib-python)
    export DIB_PYTHON_PIP="$_dib_python_path -m pip"
    if [[ ${DIB_PYTHON_VERSION:-3} == 3 ]]; then
        export DIB_PYTHON_VIRTUALENV="$_dib_python_path -m venv"
    else
        export DIB_PYTHON_VIRTUALENV="$_dib_python_path -m virtualenv"
    fi
    unset _dib_python_path
fi
