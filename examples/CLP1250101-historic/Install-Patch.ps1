# Historic patch CLP1250101: the script is the whole patch.
# The engine runs it with pwsh and sets CLP_ROOT to the target root ('/' on a real system).
$ErrorActionPreference = 'Stop'
$root = if ($env:CLP_ROOT) { $env:CLP_ROOT } else { '/' }
$dir = Join-Path $root 'var/lib/clp-historic'
New-Item -ItemType Directory -Force -Path $dir | Out-Null
Set-Content -Path (Join-Path $dir 'CLP1250101.installed') -Value 'CLP1250101 installed'
Write-Output "CLP1250101 installed under $dir"
